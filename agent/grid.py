"""Is a time a step of the hub's grid? A window anchored between steps reads instants no reading has.

The grid is the hub's own (``hub_index``): a regular hub steps from its first reading, as validation numbers its
slots; an operating-hours hub (``extra.slots_per_day``) has its day's slots from ``extra.first_slot``.
"""

import pandas as pd

from cityagent.errors import ConfigError, HubError
from cityagent.hub.hub import Hub, HubMeta
from cityagent.hub.tensor import hub_index, time_grid


class OffGrid(ConfigError):
    """A time that is not a step of the hub's grid; waiting does not put it on the grid."""


def step_words(step: pd.Timedelta) -> str:
    """``5-minute``, ``1-hour``, ``30-second``: a step as a reader says it."""
    seconds = step.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}-{unit}"
    return str(step)


def neighbours(hub: Hub, t: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The grid steps just before and after ``t`` (aware), or None when ``t`` is a step itself."""
    meta, step = hub.meta, hub.meta.step_delta
    t = t.tz_convert(meta.timezone)
    if meta.extra.get("slots_per_day"):  # the night has no slots: look a few days either side
        grid = time_grid(meta, t - pd.Timedelta(days=3), t + pd.Timedelta(days=3))
        pos = int(grid.searchsorted(t))
        if pos < len(grid) and grid[pos] == t:
            return None
        return grid[max(pos - 1, 0)], grid[min(pos, len(grid) - 1)]
    try:
        origin = hub_index(hub)[0]
    except HubError:  # no readings yet: steps of the UTC epoch
        origin = pd.Timestamp(0, tz="UTC")
    before = origin + (t - origin) // step * step
    if before == t:
        return None
    return before.tz_convert(meta.timezone), (before + step).tz_convert(meta.timezone)


def on_grid(hub: Hub, t: pd.Timestamp, what: str = "the anchor") -> pd.Timestamp:
    """``t`` in the hub's timezone (a naive ``t`` is read in it); an OffGrid naming the nearest steps if off it."""
    t = t.tz_localize(hub.meta.timezone) if t.tzinfo is None else t.tz_convert(hub.meta.timezone)
    near = neighbours(hub, t)
    if near is None:
        return t

    def say(s: pd.Timestamp) -> str:
        clock = "%H:%M:%S" if s.second else "%H:%M"
        return s.strftime(clock if s.date() == t.date() else f"%Y-%m-%d {clock}")

    closed = closed_hours(hub.meta, t)
    where = (
        f"outside the hub's operating hours ({closed})"
        if closed
        else f"not on the hub's {step_words(hub.meta.step_delta)} grid"
    )
    raise OffGrid(f"{what} {t.isoformat()} is {where}: use {say(near[0])} or {say(near[1])}")


def closed_hours(meta: HubMeta, t: pd.Timestamp) -> str | None:
    """The operating hours (``06:00–24:00``) when ``t`` (local) falls outside them, else None (or no such hours)."""
    spd = meta.extra.get("slots_per_day")
    if not spd:
        return None
    first = pd.Timedelta(str(meta.extra.get("first_slot", "00:00")) + ":00")
    end = first + int(spd) * meta.step_delta  # the end of the last slot
    clock = t - t.normalize()
    if first <= clock < end or first <= clock + pd.Timedelta(days=1) < end:  # hours may run past midnight
        return None
    return f"{_clock(first)}–{_clock(end)}, {int(spd)} {step_words(meta.step_delta)} slots a day"


def _clock(offset: pd.Timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
