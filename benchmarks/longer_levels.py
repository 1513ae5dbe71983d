"""Per-cell levels over more hours than the UCTB window's 6 closeness frames, for demand_selection.py --levels.

Each channel is a cell's count over a span of past hours against its usual count over the same hours (a mean per
hour of day and weekend, over the hours before the scored block), as ``(count + 5) / (usual + 5)``. A span always
ends at or before the window's last input hour, so nothing after the forecast time is read.

Kinds:
    ``L24`` (any number of hours): the last 24 hours, rolling.
    ``half``: the last complete half-day (00–12 or 12–24), as the archive's OD counts are cut.
    ``today``: since midnight (yesterday, for a forecast of 00:00).
    ``od-dep``, ``od-arr``: trips leaving / reaching the cell in the last complete half-day, from the DiDi archive's
        ``TrafficMonthlyInteraction`` (120 half-days × origin × destination; the hub keeps only their sum).
"""

import re
from pathlib import Path

import numpy as np

KINDS = re.compile(r"^(L\d+|half|today|od-dep|od-arr)$")


def check_kinds(spec: str) -> list[str]:
    """``"od-dep,L24"`` → its kinds; exits naming the valid ones."""
    kinds = spec.split(",")
    for kind in kinds:
        if not KINDS.match(kind) or kind == "L0":
            raise SystemExit(f"--levels {spec!r}: {kind!r} is not L<hours>, half, today, od-dep or od-arr")
    return kinds


def weekend(day: np.ndarray, first_weekday: int) -> np.ndarray:
    """Whether day ``day`` (0 = the series' first day, a ``first_weekday``: Monday 0) is a Saturday or Sunday."""
    return (day + first_weekday) % 7 >= 5


def usual_counts(series: np.ndarray, first: int, end: int, first_weekday: int) -> np.ndarray:
    """``[T, N]``: each hour's usual count, the mean of hours ``[first, end)`` with its hour of day and weekend."""
    t = np.arange(len(series))
    slot = t % 24 + 24 * weekend(t // 24, first_weekday)
    seen = (t >= first) & (t < end)
    return group_means(series, slot, seen, 48, 24)[slot]


def group_means(values: np.ndarray, group: np.ndarray, seen: np.ndarray, groups: int, period: int) -> np.ndarray:
    """``[groups, N]`` means of the ``seen`` rows of ``values`` per ``group``; a group with no row seen (no weekend
    yet) takes the mean of the groups ``period`` apart (the same hour or half-day on the other kind of day)."""
    means = np.full((groups, values.shape[1]), np.nan)
    for g in range(groups):
        if (rows := seen & (group == g)).any():
            means[g] = values[rows].mean(0)
    for g in range(groups):
        if np.isnan(means[g]).all():
            means[g] = values[seen & (group % period == g % period)].mean(0)
    return means


def spans(kind: str, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hours ``[lo, hi)`` of each window's span, the window's last input hour being ``anchors``."""
    target = anchors + 1
    if kind == "half":
        hi = target // 12 * 12
        return hi - 12, hi
    if kind == "today":
        midnight = target // 24 * 24
        return np.where(midnight == target, midnight - 24, midnight), target
    hours = int(kind[1:])
    return target - hours, target


def level_channels(
    series: np.ndarray, anchors: np.ndarray, kinds: list[str], first: int, end: int, first_weekday: int
) -> np.ndarray:
    """``[S, N, C]``: the own-count kinds (``L<h>``, ``half``, ``today``) for windows ending at ``anchors``."""
    usual = usual_counts(series, first, end, first_weekday)
    total = np.vstack([np.zeros((1, series.shape[1])), np.cumsum(series, 0)])
    normal = np.vstack([np.zeros((1, series.shape[1])), np.cumsum(usual, 0)])
    cols = []
    for kind in kinds:
        lo, hi = spans(kind, anchors)
        cols.append((total[hi] - total[lo] + 5) / (normal[hi] - normal[lo] + 5))
    return np.stack(cols, -1)


def od_half_days(archive: Path, ids: list[str]) -> dict[str, np.ndarray]:
    """``{"od-dep": [120, N], "od-arr": [120, N]}``: trips leaving / reaching each cell ``ids`` per half-day."""
    from cityagent.hub.importers.archives import tar_pickle

    _, d = tar_pickle(archive)
    od = np.asarray(d["Node"]["TrafficMonthlyInteraction"], dtype=np.float64)  # [half-day, origin, destination]
    cells = [int(i) for i in ids]
    return {"od-dep": od.sum(2)[:, cells], "od-arr": od.sum(1)[:, cells]}


def od_channels(
    od: dict[str, np.ndarray], anchors: np.ndarray, kinds: list[str], first: int, end: int, first_weekday: int
) -> np.ndarray:
    """``[S, N, C]``: the OD kinds of the last half-day complete at each window's forecast hour, against the mean
    of the half-days in hours ``[first, end)`` with the same half (morning, afternoon) and weekend."""
    half = (anchors + 1) // 12 - 1
    h = np.arange(len(next(iter(od.values()))))
    group = h % 2 + 2 * weekend(h // 2, first_weekday)
    seen = (h * 12 >= first) & (h * 12 + 12 <= end)
    cols = []
    for kind in kinds:
        counts = od[kind]
        usual = group_means(counts, group, seen, 4, 2)[group]
        cols.append((counts[half] + 5) / (usual[half] + 5))
    return np.stack(cols, -1)


def extra_channels(
    spec: str, series: np.ndarray, anchors: np.ndarray, od: dict | None, first_weekday: int, block_start: int
) -> np.ndarray:
    """``[S, N, C]`` for the kinds in ``spec``, the usual levels from the windows' hours before ``block_start``
    (the block's first window)."""
    kinds = check_kinds(spec)
    first, end = int(anchors[0]) - 23, int(anchors[block_start]) + 1
    own = [k for k in kinds if not k.startswith("od-")]
    parts = [level_channels(series, anchors, own, first, end, first_weekday)] if own else []
    if via_od := [k for k in kinds if k.startswith("od-")]:
        parts.append(od_channels(od, anchors, via_od, first, end, first_weekday))
    return np.concatenate(parts, -1)
