"""HA: the historical-average baseline of the T-GCN family (Zhao et al., IEEE T-ITS 2020, Sec. IV)."""

from torch import nn

from cityagent.models.layers.window_mean import WindowMean
from cityagent.models.params import check_frames
from cityagent.models.registry import register


@register("ha", domain="traffic", kind="baseline")
def build_ha(
    input_len: int, horizon: int, target_channel: int = 0, quantiles: tuple[float, ...] | None = None
) -> nn.Module:
    """Historical average: the mean of the input window's target channel, repeated over the horizon.

    With quantiles it returns the window's empirical quantiles instead.
    """
    return WindowMean(horizon, check_frames(None, input_len), target_channel, quantiles)
