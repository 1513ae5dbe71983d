"""UCTB time axes: TimeRange + TimeFitness → timestamps, with the metro 18-slot operating-hours convention."""

import re
from pathlib import Path
from typing import Any

import pandas as pd

from cityagent.errors import ConfigError, HubError
from cityagent.hub.importers.frames import regular_ts

OPERATING_FITNESS = 80  # 1440 / 80 = 18 slots per day: UCTB's metro device, one slot per operating hour


def uctb_time_axis(
    time_range: Any, fitness: Any, periods: int, first_slot: str, timezone: str, where: Path
) -> tuple[pd.DatetimeIndex, str, dict[str, Any]]:
    """Timestamps, the step alias and the facts to keep in ``extra`` for ``periods`` UCTB slots."""
    try:
        start = pd.Timestamp(time_range[0])
        end = pd.Timestamp(time_range[1])
        fitness = int(fitness)
    except (TypeError, ValueError, IndexError) as e:
        raise HubError(f"{where}: TimeRange {time_range!r} / TimeFitness {fitness!r} are not dates/minutes") from e
    if fitness <= 0 or 1440 % fitness:
        raise HubError(f"{where}: TimeFitness {fitness} min does not divide a day; cannot place the slots")
    per_day = 1440 // fitness
    extra: dict[str, Any] = {"time_range": [str(t) for t in time_range], "time_fitness": fitness}
    if fitness == OPERATING_FITNESS:
        if periods % per_day:
            raise HubError(f"{where}: {periods} slots are not whole days of {per_day}; the archive is truncated")
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", first_slot):
            raise ConfigError(f"first_slot={first_slot!r} is not a local time HH:MM such as '06:00'")
        offset = pd.Timedelta(first_slot + ":00")
        if offset + pd.Timedelta(hours=per_day) > pd.Timedelta(days=1):
            raise ConfigError(
                f"first_slot={first_slot} + {per_day} hourly slots runs past midnight; use an earlier one"
            )
        days = pd.date_range(start.normalize(), periods=periods // per_day, freq="D").to_numpy()
        slots = (offset + pd.to_timedelta(range(per_day), unit="h")).to_numpy()
        wall = (days[:, None] + slots[None, :]).reshape(-1)  # [days * per_day], local wall time
        try:
            ts = pd.DatetimeIndex(wall).tz_localize(timezone, nonexistent="raise", ambiguous="raise").as_unit("ns")
        except (ValueError, TypeError) as e:
            raise HubError(f"{where}: metro slots cannot be placed in {timezone} ({e}); pass timezone=") from e
        step = "1h"
        extra.update({"slots_per_day": per_day, "first_slot": first_slot, "slot_hours": "inferred"})
    else:
        step = f"{fitness}min" if fitness % 60 else f"{fitness // 60}h"
        ts = regular_ts(start, periods, step, timezone)
    last_day = end.normalize() + pd.Timedelta(days=1)  # TimeRange's end day is inclusive
    if ts[-1].tz_localize(None) >= last_day:
        raise HubError(f"{where}: {periods} slots of {fitness} min run past TimeRange end {time_range[1]}")
    extra["days"] = int((ts[-1].tz_localize(None).normalize() - start.normalize()).days) + 1
    return ts, step, extra
