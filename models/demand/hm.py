"""HM: the historical-mean baseline of grid-demand papers (Zhang et al. AAAI 2017, ST-ResNet, Table 2)."""

from collections.abc import Sequence

from torch import nn

from cityagent.models.layers.window_mean import WindowMean
from cityagent.models.params import check_frames
from cityagent.models.registry import register


@register("hm", domain="demand", kind="baseline")
def build_hm(
    input_len: int,
    horizon: int,
    target_channel: int = 0,
    quantiles: tuple[float, ...] | None = None,
    frames: Sequence[int] | None = None,
) -> nn.Module:
    """Historical mean: the mean of the chosen input frames' target, repeated over the horizon.

    Args:
        frames: input time indices to average, e.g. the period/trend frames (same slot on past days
            or weeks); negative indices count from the end. Default: every frame.
    """
    return WindowMean(horizon, check_frames(frames, input_len), target_channel, quantiles)
