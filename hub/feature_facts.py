"""What each input channel of a task means and may hold, for clients that build a model's input without cityagent.

An exported model carries these facts, and serving refuses inputs that break them: a channel outside its valid
range (a sentinel such as -1 for a missing reading, m/s for km/h, time of day in minutes) or a one-hot group that is
not one-hot (a weekday left out) would otherwise come back as a confident forecast. A fact is recorded only where the
task's own inputs keep it, so a dataset that departs from it is never refused its own kind of data.
"""

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from cityagent.hub.calendar import KINDS
from cityagent.hub.schema import COUNT, TABLES

_ONE_HOT = {"dow": 7, "hour": 24}  # calendar groups: name prefix → columns
_FLAGS = re.compile(r"^(dow_\d|hour_\d{1,2}|holiday|weekend|weather_[a-z]+)$")
_EXTRA_BOUNDS = {"risk": COUNT, "inflow": COUNT, "outflow": COUNT}  # GSNet's channels (sums of counts)


def channel_bounds(name: str) -> tuple[float, float] | None:
    """The inclusive valid range of a channel named ``name``: a hub column's physical bounds (``speed``: 0 to 300
    km/h), a calendar channel's (``tod``: 0 to 1; one-hot and flag channels: 0 to 1), or None when unknown."""
    if name == "tod":
        return (0.0, 1.0)
    if name == "dow_index":
        return (0.0, 6.0)
    if _FLAGS.match(name):
        return (0.0, 1.0)
    if name in _EXTRA_BOUNDS:
        return _EXTRA_BOUNDS[name]
    for table in TABLES.values():
        for column in table.columns:
            if column.name == name and column.bounds is not None:
                return column.bounds
    return None


def one_hot_groups(names: Sequence[str]) -> list[list[str]]:
    """The complete calendar one-hot groups among ``names`` (``dow_0`` … ``dow_6``, ``hour_0`` … ``hour_23``)."""
    groups = []
    for prefix, size in _ONE_HOT.items():
        group = [f"{prefix}_{i}" for i in range(size)]
        if all(g in names for g in group):
            groups.append(group)
    return groups


def calendar_meanings(names: Sequence[str]) -> dict[str, str]:
    """What each calendar channel among ``names`` holds, in the city's local wall time (``hub.calendar.KINDS``)."""
    out = {}
    for name in names:
        kind = "dow" if re.match(r"^dow_\d$", name) else "hour" if re.match(r"^hour_\d{1,2}$", name) else name
        if kind in KINDS:
            out[name] = KINDS[kind] + (" (the hub's holiday dates)" if kind == "holiday" else "")
    return out


def input_facts(names: Sequence[str], x: np.ndarray, timezone: str | None) -> dict[str, Any]:
    """The facts an exported model carries about its input channels (JSON types).

    Args:
        names: the task's feature names, the last axis of ``x``.
        x: the task's raw-unit inputs ``[T, N, F]`` (NaN where missing); a fact is kept only where they keep it.
        timezone: the hub's IANA zone, in whose wall time the calendar channels are read (None: not known).

    Returns:
        ``input_ranges`` (channel → [low, high]), ``one_hot`` (groups of channels, exactly one 1 per step and node),
        ``calendar`` (channel → meaning) and ``timezone``.
    """
    flat = np.asarray(x).reshape(-1, len(names))
    ranges = {}
    for i, name in enumerate(names):
        bounds = channel_bounds(name)
        column = flat[:, i]
        seen = column[np.isfinite(column)]
        if bounds is not None and (seen.size == 0 or (seen.min() >= bounds[0] and seen.max() <= bounds[1])):
            ranges[name] = [float(bounds[0]), float(bounds[1])]
    groups = []
    for group in one_hot_groups(names):
        block = flat[:, [list(names).index(g) for g in group]]
        rows = block[np.isfinite(block).all(axis=1)]
        if rows.size and np.isin(rows, (0.0, 1.0)).all() and (rows.sum(axis=1) == 1).all():
            groups.append(group)
    return {"input_ranges": ranges, "one_hot": groups, "calendar": calendar_meanings(names), "timezone": timezone}
