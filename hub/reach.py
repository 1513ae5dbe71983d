"""How much of a date-partitioned table a reader needs: the recent days, and the days around a few times further back.

The agent's cycle reads a day or two of a traffic table for its drift window and its forecasts, and, for a model
whose input holds period or trend frames (the same hour a week or four weeks back), the dates around those frames;
the weeks in between are never read. Dates are the hub's local partition dates (``date=YYYY-MM-DD``).
"""

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import pandas as pd

DATE_FOLDER = re.compile(r"date=(\d{4}-\d{2}-\d{2})")  # a partition folder: <table>/date=YYYY-MM-DD/part-...
_DATE_DIR = re.compile(f"/{DATE_FOLDER.pattern}/")
DAY = pd.Timedelta(days=1)
DST = pd.Timedelta(hours=1)  # the most a clock change moves local time against elapsed time


@dataclass(frozen=True)
class Reach:
    """What to read of a table, counted back from its newest reading (whose date is the newest date folder).

    Args:
        back: every date a reading this far before the newest can fall on, the newest date included.
        spans: ``(earliest, latest)`` offsets from the newest reading (negative: before it); every date those times
            can fall on is read too.
        also: dates read whatever the newest date is (a replay's window, an old forecast's targets).
    """

    back: pd.Timedelta
    spans: tuple[tuple[pd.Timedelta, pd.Timedelta], ...] = ()
    also: frozenset[date] = frozenset()

    @classmethod
    def of(cls, recent: pd.Timedelta) -> "Reach":
        """The last ``recent``, rounded up to whole days, as ``read_hub(recent=...)`` and ``loop.history`` read:
        the newest date and the ``days`` + 1 dates before it."""
        return cls(math.ceil(recent / DAY) * DAY)

    def dates(self, newest: date) -> tuple[date, set[date]]:
        """The first date of the recent run ending at ``newest``, and the dates of the spans before it."""
        # the newest reading lies in [midnight, midnight + a day) of its date; local dates are counted in local
        # clock time, which a DST change in between moves against elapsed time by an hour at most
        midnight = pd.Timestamp(datetime.combine(newest, time()))
        first = (midnight - self.back - DST).date()
        extra = {d for d in self.also if d < first}
        for lo, hi in self.spans:
            day, last = (midnight + lo - DST).date(), (midnight + DAY + hi + DST).date()
            while day <= min(last, first - timedelta(days=1)):
                extra.add(day)
                day += timedelta(days=1)
        return first, extra

    def limit(self, history: pd.Timedelta) -> "Reach":
        """This reach, no further back than ``history`` (``loop.history``): a span beyond it is not read at all (the
        model it is for fails, naming loop.history)."""
        cut = -(math.ceil(history / DAY) * DAY + DAY)
        spans = tuple((lo, hi) for lo, hi in self.spans if lo >= cut)
        return Reach(min(self.back, Reach.of(history).back), spans, self.also)


def reach_files(files: list[str], reach: Reach) -> tuple[list[str], date | None, frozenset[date]]:
    """``files`` without the date folders ``reach`` leaves out; the first date of the recent run when an older one
    was left out (else None), and the older dates read. Files outside date folders (a table kept in one file) are
    always kept."""
    dated = [m.group(1) if (m := _DATE_DIR.search(f)) else None for f in files]
    found = sorted({date.fromisoformat(d) for d in dated if d})
    if not found:
        return files, None, frozenset()
    first, extra = reach.dates(found[-1])
    if found[0] >= first:
        return files, None, frozenset()
    keep = [f for f, d in zip(files, dated, strict=True) if d is None or _kept(date.fromisoformat(d), first, extra)]
    return keep, first, frozenset(d for d in found if d < first and d in extra)


def _kept(day: date, first: date, extra: set[date]) -> bool:
    return day >= first or day in extra
