"""`read_hub(recent=...)` reads only the latest date partitions of each table and says from when it is complete."""

import pandas as pd

from cityagent.agent.partfiles import write_part
from cityagent.hub import Hub, read_hub, write_hub
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
    recent = read_hub(tmp_path / "hub", recent=pd.Timedelta("2d"))

    since = recent.origin.since["traffic"]
    assert since == (newest.normalize() - pd.Timedelta(days=3))  # 2 days, and one more, before the newest date
    assert since <= newest - pd.Timedelta("2d")
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
    recent = read_hub(tmp_path / "hub", recent=pd.Timedelta("2d"))
    assert len(recent.table("decisions")) == 1 and "decisions" not in recent.origin.since
    assert len(recent.table("traffic")) < len(full.table("traffic"))


def test_a_hub_shorter_than_the_history_is_read_whole(tmp_path):
    full = long_hub(tmp_path / "hub", days=3)
    recent = read_hub(tmp_path / "hub", recent=pd.Timedelta("3d"))
    assert recent.origin.since == {}
    for name in full.tables:
        pd.testing.assert_frame_equal(recent.table(name), full.table(name))
