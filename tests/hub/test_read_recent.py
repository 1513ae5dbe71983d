"""`read_hub(recent=..., reach=...)` reads only the latest date partitions of each table (and the dates of a few spans
further back), and says from when it is complete and which older dates it holds."""

from datetime import date, timedelta

import pandas as pd

from cityagent.agent.partfiles import write_part
from cityagent.hub import Hub, read_hub, write_hub
from cityagent.hub.files import newest_dates
from cityagent.hub.reach import Reach
from tests.factories import tiny_hub

TZ = "Asia/Shanghai"


def long_hub(root, days: int = 10) -> Hub:
    """tiny_hub's tables over ``days`` days at 2-hour steps (one date partition per day)."""
    hub = tiny_hub(steps=12 * days, step="2h")
    write_hub(hub, root)
    return read_hub(root)


def test_only_the_recent_dates_are_read_and_since_says_from_when(tmp_path):
    full = long_hub(tmp_path / "hub")
    newest = full.table("traffic")["ts"].max()
    recent = read_hub(tmp_path / "hub", recent=pd.Timedelta(days=2))

    since = recent.origin.since["traffic"]
    assert since == (newest.normalize() - pd.Timedelta(days=3))  # 2 days, and one more, before the newest date
    assert since <= newest - pd.Timedelta(days=2)
    for name in ("traffic", "demand"):
        want = full.table(name)[full.table(name)["ts"] >= since].reset_index(drop=True)
        pd.testing.assert_frame_equal(recent.table(name), want, check_exact=True)
    pd.testing.assert_frame_equal(recent.table("sensors"), full.table("sensors"))  # static tables: whole
    assert recent.origin.tables["traffic"] == "traffic/ (4 files)"


def test_each_table_counts_back_from_its_own_newest_date(tmp_path):
    full = long_hub(tmp_path / "hub")
    ts = pd.Timestamp("2026-12-06 09:00", tz=TZ)  # decisions are stamped with the wall clock, months after the data
    write_part(
        tmp_path / "hub" / "decisions" / "date=2026-12-06",
        pd.DataFrame({"ts": [ts], "kind": "alert", "target_id": ["s0"], "value": 1.0}),
    )
    recent = read_hub(tmp_path / "hub", recent=pd.Timedelta(days=2))
    assert len(recent.table("decisions")) == 1 and "decisions" not in recent.origin.since
    assert len(recent.table("traffic")) < len(full.table("traffic"))


def test_a_hub_shorter_than_the_history_is_read_whole(tmp_path):
    full = long_hub(tmp_path / "hub", days=3)
    recent = read_hub(tmp_path / "hub", recent=pd.Timedelta(days=3))
    assert recent.origin.since == {}
    for name in full.tables:
        pd.testing.assert_frame_equal(recent.table(name), full.table(name))


def local_dates(df: pd.DataFrame) -> pd.Series:
    return df["ts"].dt.tz_convert(TZ).dt.date


def test_a_reach_reads_the_recent_days_and_the_dates_of_its_spans(tmp_path):
    full = long_hub(tmp_path / "hub", days=12)
    traffic = full.table("traffic")
    newest = local_dates(traffic).max()
    week = pd.Timedelta(days=7)
    reach = {"traffic": Reach(pd.Timedelta(days=1), spans=((-week - pd.Timedelta(hours=4), -week),))}
    got = read_hub(tmp_path / "hub", recent=pd.Timedelta(days=2), reach=reach)

    first = newest - timedelta(days=2)
    extra = {newest - timedelta(days=8), newest - timedelta(days=7), newest - timedelta(days=6)}  # the week-old day
    assert got.origin.since["traffic"].date() == first and got.origin.read_dates["traffic"] == frozenset(extra)
    keep = (local_dates(traffic) >= first) | local_dates(traffic).isin(extra)
    pd.testing.assert_frame_equal(got.table("traffic"), traffic[keep].reset_index(drop=True), check_exact=True)
    assert keep.sum() < len(traffic) / 2
    # tables without a reach of their own read `recent`
    assert got.origin.since["demand"].date() == newest - timedelta(days=3) and "demand" not in got.origin.read_dates

    week_ago = pd.Timestamp(f"{newest - timedelta(days=7)} 10:00", tz=TZ)
    assert got.origin.first_unread("traffic", pd.DatetimeIndex([week_ago, got.origin.since["traffic"]])) is None
    gap = pd.Timestamp(f"{newest - timedelta(days=4)} 10:00", tz=TZ)
    assert got.origin.first_unread("traffic", pd.DatetimeIndex([week_ago, gap])) == gap
    assert got.origin.first_unread("sensors", pd.DatetimeIndex([gap])) is None  # read whole


def test_a_reach_is_cut_at_the_history():
    week, day = pd.Timedelta(days=7), pd.Timedelta(days=1)
    reach = Reach(5 * day, spans=((-4 * week, -4 * week + day), (-week, -week + day), (-2 * day, -day)))
    cut = reach.limit(10 * day)
    assert cut.back == 5 * day and cut.spans == ((-week, -week + day), (-2 * day, -day))
    assert reach.limit(pd.Timedelta(hours=60)) == Reach(3 * day, ((-2 * day, -day),))
    assert Reach.of(pd.Timedelta(hours=25)).back == 2 * day and Reach.of(day).back == day


def test_the_recent_run_starts_where_a_reading_that_far_back_can_fall():
    """From anywhere in the newest date: 8 hours back from 00:00 falls on the day before (an hour more for DST)."""
    newest = date(2026, 3, 6)
    assert Reach(pd.Timedelta(hours=8)).dates(newest) == (date(2026, 3, 5), set())
    assert Reach(pd.Timedelta(0)).dates(newest)[0] == date(2026, 3, 5)  # 23:30 of the day before, with DST
    assert Reach(pd.Timedelta(hours=23)).dates(newest)[0] == date(2026, 3, 5)
    assert Reach(pd.Timedelta(hours=23, minutes=30)).dates(newest)[0] == date(2026, 3, 4)
    assert Reach.of(pd.Timedelta(days=2)).dates(newest)[0] == date(2026, 3, 3)  # `recent`: as it always read


def test_newest_dates_come_from_folders_that_hold_a_part(tmp_path):
    long_hub(tmp_path / "hub", days=3)
    newest = newest_dates(tmp_path / "hub")
    assert set(newest) == {"traffic", "demand", "incidents", "weather"} and newest["traffic"] == date(2026, 3, 4)
    (tmp_path / "hub" / "traffic" / "date=2026-03-09").mkdir()  # made, and left empty by a writer that died
    (tmp_path / "hub" / "traffic" / "date=2026-03-08").mkdir()
    (tmp_path / "hub" / "traffic" / "date=2026-03-08" / ".part-x.parquet.tmp").write_bytes(b"")
    assert newest_dates(tmp_path / "hub")["traffic"] == date(2026, 3, 4)
