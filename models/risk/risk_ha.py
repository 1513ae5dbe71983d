"""Risk HA: the historical-average baseline of accident-risk papers (Wang et al. AAAI 2021, GSNet, Table 2)."""

from collections.abc import Sequence

from torch import nn

from cityagent.models.layers.window_mean import WindowMean
from cityagent.models.params import check_frames
from cityagent.models.registry import register


@register("risk_ha", domain="risk", kind="baseline")
def build_risk_ha(
    input_len: int,
    horizon: int,
    target_channel: int = 0,
    quantiles: tuple[float, ...] | None = None,
    frames: Sequence[int] | None = None,
) -> nn.Module:
    """Risk HA: the mean of the chosen input frames' risk channel, repeated over the horizon.

    Args:
        frames: input time indices to average (GSNet's window is 4 same-hour-past-weeks + 3 recent
            hours; ``frames=(0, 1, 2, 3)`` averages the weekly ones). Default: every frame.
    """
    return WindowMean(horizon, check_frames(frames, input_len), target_channel, quantiles)
