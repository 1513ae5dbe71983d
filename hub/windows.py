"""Training windows as integer offsets around an anchor step, gathered lazily from one shared array."""

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cityagent.errors import ConfigError, HubError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowSpec:
    """Which steps feed a sample and which it predicts, as offsets from the anchor step t.

    Args:
        input_offsets: input steps relative to t, in the order the model sees them (e.g. ``(-11, ..., 0)``).
        target_offsets: predicted steps relative to t, all after every input step (e.g. ``(1, ..., 12)``).
        groups: optional named runs of ``input_offsets`` in order, e.g. ``(("trend", 4), ("closeness", 3))``.
    """

    input_offsets: tuple[int, ...]
    target_offsets: tuple[int, ...]
    groups: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if not self.input_offsets or not self.target_offsets:
            raise ConfigError("a window needs at least one input offset and one target offset")
        if min(self.target_offsets) <= max(self.input_offsets):
            raise ConfigError(
                f"target offsets {self.target_offsets} must all come after the inputs "
                f"(latest input offset {max(self.input_offsets)}); otherwise targets leak into inputs"
            )
        if self.groups and sum(n for _, n in self.groups) != len(self.input_offsets):
            raise ConfigError(f"groups {self.groups} do not add up to {len(self.input_offsets)} input offsets")

    @classmethod
    def sliding(cls, input_len: int, horizon: int) -> "WindowSpec":
        """Inputs t-input_len+1..t, targets t+1..t+horizon."""
        if input_len < 1 or horizon < 1:
            raise ConfigError(f"input_len={input_len} and horizon={horizon} must both be at least 1")
        return cls(tuple(range(1 - input_len, 1)), tuple(range(1, horizon + 1)))

    @classmethod
    def periodic(
        cls, closeness: int, period: int, trend: int, period_len: int, trend_len: int, horizon: int = 1
    ) -> "WindowSpec":
        """UCTB/GSNet inputs: the target's slot in previous weeks and days, then the most recent steps.

        Args:
            closeness: number of most recent steps (t-closeness+1..t).
            period: steps per day (the daily period, e.g. 24 hourly, 18 metro slots).
            trend: steps per week (e.g. 168 hourly).
            period_len: number of previous days at the target's slot.
            trend_len: number of previous weeks at the target's slot.
            horizon: targets t+1..t+horizon; periodic offsets refer to the first target t+1.
        """
        if min(closeness, period_len, trend_len) < 0 or closeness + period_len + trend_len == 0:
            raise ConfigError("closeness, period_len and trend_len must be ≥ 0 and not all zero")
        trend_off = tuple(1 - k * trend for k in range(trend_len, 0, -1))  # oldest week first
        period_off = tuple(1 - k * period for k in range(period_len, 0, -1))
        close_off = tuple(range(1 - closeness, 1))
        groups = tuple(
            (n, len(o)) for n, o in (("trend", trend_off), ("period", period_off), ("closeness", close_off)) if o
        )
        return cls(trend_off + period_off + close_off, tuple(range(1, horizon + 1)), groups)

    @property
    def input_len(self) -> int:
        return len(self.input_offsets)

    @property
    def horizon(self) -> int:
        return len(self.target_offsets)

    @property
    def history(self) -> int:
        """Steps before the anchor that inputs reach back (0 for inputs that end at t)."""
        return -min(self.input_offsets)

    def anchors(self, start: int, end: int) -> np.ndarray:
        """Every anchor whose inputs and targets all lie in steps ``[start, end)``."""
        lo = start - min(self.input_offsets)
        hi = end - max(self.target_offsets)  # exclusive
        return np.arange(lo, max(lo, hi), dtype=np.int64)

    def need(self) -> int:
        """Steps one window spans, from the oldest input to the last target."""
        return max(self.target_offsets) - min(self.input_offsets) + 1


@dataclass
class Split:
    """Samples of one part (train/val/test): anchors into shared ``x``/``y`` arrays, gathered per batch.

    ``x`` is ``[T, N, F]`` raw units, ``y`` is ``[T, N]`` real units with NaN where the target is missing,
    ``times`` the ``[T]`` series index, ``anchors`` the sample anchors t. ``skipped`` counts windows left out
    (by reason), ``masked`` the kept windows with at least one missing (masked) target.
    """

    x: np.ndarray
    y: np.ndarray
    anchors: np.ndarray
    spec: WindowSpec
    times: pd.DatetimeIndex
    skipped: dict[str, int] = field(default_factory=dict)
    masked: int = 0

    def __len__(self) -> int:
        return len(self.anchors)

    @property
    def ts(self) -> pd.DatetimeIndex:
        """Timestamp of each sample's first target step, ``[S]``."""
        return self.times[self.anchors + self.spec.target_offsets[0]]

    def target_times(self) -> np.ndarray:
        """``[S, H]`` datetime64 of every target step."""
        return self.times.to_numpy()[self.anchors[:, None] + np.asarray(self.spec.target_offsets)[None, :]]

    def batch(self, idx: np.ndarray | slice | list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(x [B, T_in, N, F], y [B, H, N], mask [B, H, N])`` of samples ``idx``; missing targets: 0, mask False."""
        a = np.atleast_1d(self.anchors[idx])
        tin = a[:, None] + np.asarray(self.spec.input_offsets)[None, :]  # [B, T_in]
        tout = a[:, None] + np.asarray(self.spec.target_offsets)[None, :]  # [B, H]
        y = self.y[tout]  # [B, H, N]
        mask = ~np.isnan(y)
        return self.x[tin], np.where(mask, y, 0).astype(self.y.dtype), mask

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The whole split at once (small data only)."""
        return self.batch(slice(None))

    def subset(self, idx: np.ndarray | slice) -> "Split":
        """The same arrays with a subset of the anchors (e.g. a validation tail)."""
        return Split(self.x, self.y, self.anchors[idx], self.spec, self.times)


def make_split(
    x: np.ndarray,
    y: np.ndarray,
    anchors: np.ndarray,
    spec: WindowSpec,
    times: pd.DatetimeIndex,
    name: str = "split",
    skip_missing_inputs: bool = True,
    skip_missing_targets: bool = False,
) -> Split:
    """A Split of ``anchors``, leaving out (and counting) windows with missing inputs or targets as asked.

    A window's inputs are missing when any input value at any node is NaN; a target is missing when NaN.
    Kept windows with missing targets are masked in ``batch``.
    """
    if x.shape[0] != len(times) or y.shape[0] != len(times):
        raise HubError(f"x has {x.shape[0]} steps, y {y.shape[0]} and times {len(times)}; they must agree")
    anchors = np.asarray(anchors, dtype=np.int64)
    if len(anchors) and (anchors.min() - spec.history < 0 or anchors.max() + max(spec.target_offsets) >= len(times)):
        raise HubError(f"{name}: anchors {anchors.min()}..{anchors.max()} reach outside the {len(times)} steps")
    bad_y = np.isnan(y).any(axis=tuple(range(1, y.ndim)))  # [T] step has a missing target
    out_bad = bad_y[anchors[:, None] + np.asarray(spec.target_offsets)[None, :]].any(axis=1)
    keep = np.ones(len(anchors), dtype=bool)
    skipped: dict[str, int] = {}
    if skip_missing_inputs:
        bad_x = np.isnan(x).any(axis=tuple(range(1, x.ndim)))  # [T] step has any missing input value
        in_bad = bad_x[anchors[:, None] + np.asarray(spec.input_offsets)[None, :]].any(axis=1)
        keep &= ~in_bad
        skipped["missing_inputs"] = int(in_bad.sum())
    if skip_missing_targets:
        skipped["missing_targets"] = int((out_bad & keep).sum())
        keep &= ~out_bad
    masked = int((out_bad & keep).sum())
    if any(skipped.values()) or masked:
        log.info(
            "%s: kept %d of %d windows, left out %s, %d kept with masked targets",
            name,
            int(keep.sum()),
            len(anchors),
            skipped,
            masked,
        )
    return Split(x, y, anchors[keep], spec, times, skipped, masked)
