"""Closeness / period / trend frame groups of an input window (Zhang et al. AAAI 2017, ST-ResNet)."""

from collections.abc import Sequence

from cityagent.errors import ConfigError
from cityagent.models.params import check_frames


def frame_groups(
    input_len: int,
    closeness_frames: Sequence[int] | None,
    period_frames: Sequence[int] | None,
    trend_frames: Sequence[int] | None,
) -> list[tuple[int, ...]]:
    """The non-empty groups as resolved time indices; closeness defaults to every frame, the others to none.

    The engine's window decides which input steps are recent, daily or weekly; name them here, e.g.
    ``closeness_frames=(-3, -2, -1), period_frames=(0, 1, 2)`` when the window is [3 daily + 3 recent].
    """
    groups = [
        check_frames(closeness_frames, input_len, "closeness_frames"),
        check_frames(period_frames or (), input_len, "period_frames"),
        check_frames(trend_frames or (), input_len, "trend_frames"),
    ]
    groups = [g for g in groups if g]
    if not groups:
        raise ConfigError("closeness_frames, period_frames and trend_frames are all empty; name at least one frame.")
    return groups
