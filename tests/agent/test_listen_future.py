"""Readings from the future (a wrong sensor clock or UTC offset) are set aside, not appended to the hub."""

import pandas as pd

from cityagent.agent.deadletter import read_rejections
from cityagent.agent.listen import listen
from cityagent.agent.livehub import LiveHub
from cityagent.agent.microbatch import append_batch
from cityagent.agent.readings import to_record
from cityagent.hub import read_hub
from tests.agent.test_listen import TZ, hub_dir, needs_broker, publish, session, traffic  # noqa: F401

NOW = pd.Timestamp("2026-03-02 04:02", tz=TZ)  # tiny_hub's series reach 03:45; its step is 15 min


def rec(sensor: str, ts: str) -> dict:
    return to_record("traffic", traffic(sensor, ts), TZ)


def test_a_reading_ahead_of_the_wall_clock_is_future_and_the_next_correct_one_still_fits(hub_dir):  # noqa: F811
    live = LiveHub(hub_dir)
    wrong_offset = rec("s0", "2026-03-02T04:00:00+05:00")  # 07:00 local: three hours ahead
    result = append_batch(live, "traffic", [wrong_offset, rec("s1", "2026-03-02T04:00:00+08:00")], now=NOW)
    assert result.accepted == 1 and list(result.rejected) == [0]
    kind, reason = result.rejected[0]
    assert kind == "future" and "lies in the future" in reason and "UTC offset" in reason
    # the wrong reading did not move s0's newest step: its correct reading is not 'late'
    again = append_batch(live, "traffic", [rec("s0", "2026-03-02T04:00:00+08:00")], now=NOW)
    assert again.accepted == 1 and not again.rejected
    assert read_hub(hub_dir).tables["traffic"]["ts"].max() == pd.Timestamp("2026-03-02 04:00", tz=TZ)


def test_one_step_ahead_is_tolerated_and_history_is_fine(hub_dir):  # noqa: F811
    live = LiveHub(hub_dir)
    got = append_batch(live, "traffic", [rec("s0", "2026-03-02T04:15:00+08:00")], now=NOW)  # 13 min ahead < 1 step
    assert got.accepted == 1
    ahead = append_batch(live, "traffic", [rec("s1", "2026-03-02T04:30:00+08:00")], now=NOW)  # 28 min ahead
    assert ahead.rejected[0][0] == "future"
    replay = append_batch(live, "traffic", [rec("s2", "2026-03-02T04:00:00+08:00")], now=NOW + pd.Timedelta("300D"))
    assert replay.accepted == 1  # long past the wall clock: a replay of history


@needs_broker
def test_the_listener_sets_readings_from_2030_aside(hub_dir, session):  # noqa: F811
    prefix, cid = session
    topics = [f"{prefix}/+/readings"]
    listen(hub_dir, topics=topics, client_id=cid, duration=0.1)  # the durable session keeps what follows
    t = f"{prefix}/traffic/readings"
    publish([(t, traffic("s0", "2030-01-01T00:00:00+08:00")), (t, traffic("s1", "2026-03-02T04:00:00+08:00"))])
    stats = listen(hub_dir, topics=topics, client_id=cid, max_messages=2, duration=15)
    assert stats.accepted == 1 and stats.rejected == 1 and stats.reasons == {"future": 1}
    assert not (hub_dir / "traffic" / "date=2030-01-01").exists()
    (rejected,) = read_rejections(hub_dir)
    assert rejected["kind"] == "future" and "2030-01-01" in rejected["reason"]
    assert read_hub(hub_dir).tables["traffic"]["ts"].max() == pd.Timestamp("2026-03-02 04:00", tz=TZ)


def test_clock_ahead_sets_the_tolerance_and_is_named_in_the_reason(hub_dir):  # noqa: F811
    from cityagent.agent.agent_config import load_agent_config

    live = LiveHub(hub_dir)
    ahead = pd.Timedelta(load_agent_config(None, {"mqtt": {"clock_ahead": "30min"}}).mqtt.clock_ahead)
    got = append_batch(live, "traffic", [rec("s1", "2026-03-02T04:30:00+08:00")], now=NOW, ahead=ahead)  # 28 min
    assert got.accepted == 1, got.rejected
    far = append_batch(live, "traffic", [rec("s2", "2026-03-02T04:45:00+08:00")], now=NOW, ahead=ahead)  # 43 min
    kind, reason = far.rejected[0]
    assert kind == "future" and "plus mqtt.clock_ahead (30 min)" in reason


def test_a_clock_ahead_that_is_not_a_duration_is_refused_at_load():
    import pytest

    from cityagent.agent.agent_config import load_agent_config
    from cityagent.errors import ConfigError

    with pytest.raises(ConfigError, match="clock_ahead"):
        load_agent_config(None, {"mqtt": {"clock_ahead": "soon"}})
