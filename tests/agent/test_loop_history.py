"""The agent reads `loop.history` of the hub each cycle, not its whole past, and decides and scores as before.

A long-running agent read every reading the hub ever held each cycle, so its memory and cycle time grew with the
hub's age; a 10,000-sensor city holds ~3M traffic rows a day. Each test compares with the whole hub read.
"""

import shutil
from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest

import cityagent.agent.loop as loop
from cityagent.agent.agent_config import load_agent_config
from cityagent.agent.cycle_reach import cycle_reach, decisions_reach
from cityagent.agent.loop import Agent
from cityagent.agent.partfiles import write_part
from cityagent.agent.sense import ModelFacts, sense, steps_at
from cityagent.errors import ConfigError
from cityagent.hub import Hub, HubMeta, read_hub, write_hub
from cityagent.hub.files import read_manifest
from cityagent.hub.reach import Reach
from cityagent.hub.schema import TABLES
from cityagent.hub.tensor import time_grid
from cityagent.serving.background import ServerThread
from cityagent.serving.config import ServingConfig
from tests.agent.agent_factories import export_baselines, synthetic_city
from tests.agent.test_loop import facts_of

HISTORY = "1d"  # with drift.window 1d and alerts.usual_days 1: the 5-day city is read from its 4th date on


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    return synthetic_city(tmp_path_factory.mktemp("city5") / "hub", days=5)


@pytest.fixture(scope="module")
def served(city, tmp_path_factory):
    return export_baselines(read_hub(city), tmp_path_factory.mktemp("models"))


@pytest.fixture
def address(served):
    specs = [f"{name}={path}" for name, path in served.items()]
    cfg = {"port": 0, "metrics_port": None, "models": specs, "registry": {"poll_interval_s": 0}, "grace_s": 0}
    server = ServerThread(ServingConfig.model_validate(cfg)).start()
    yield server.address
    server.stop()


def agent(hub_dir, address, history) -> Agent:
    loop_cfg = {"retrain_on_drift": False, "retries": 2, "backoff_s": 0.1, "history": history}
    overrides = {"hub": str(hub_dir), "serving": {"address": address}, "loop": loop_cfg, "alerts": {"usual_days": 1}}
    return Agent(load_agent_config(overrides=overrides))


@pytest.fixture
def reads(monkeypatch) -> list[Hub]:
    """Every hub the loop reads."""
    seen: list[Hub] = []
    real = loop.read_hub

    def spy(*args, **kwargs) -> Hub:
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(loop, "read_hub", spy)
    return seen


def copy(city, tmp_path, name: str):
    shutil.copytree(city, tmp_path / name)
    return tmp_path / name


def test_a_cycle_reading_the_recent_history_decides_as_one_reading_the_whole_hub(city, address, tmp_path, reads):
    whole, recent = copy(city, tmp_path, "whole"), copy(city, tmp_path, "recent")
    a = agent(whole, address, None).run(once=True)[0]
    b = agent(recent, address, HISTORY).run(once=True)[0]
    assert reads[0].origin.since == {} and set(reads[1].origin.since) >= {"traffic", "demand", "incidents"}
    assert len(reads[1].table("traffic")) < len(reads[0].table("traffic")) * 0.7  # 3 of the 5 days

    assert [o.status for o in b.outcomes] == [o.status for o in a.outcomes] == ["decided"] * 3
    pd.testing.assert_frame_equal(a.decisions.drop(columns="ts"), b.decisions.drop(columns="ts"))
    assert set(a.drift) == set(b.drift)
    for model in a.drift:
        assert a.drift[model].drifted == b.drift[model].drifted


def test_a_forecast_older_than_the_history_is_scored_on_the_dates_of_its_targets(city, address, tmp_path, reads):
    """After an outage longer than loop.history, the forecasts made before it are scored on readings the cycle did
    not read: they must be scored as on the whole hub, not as missing, and without reading the whole hub."""
    errors = {}
    for history in (None, HISTORY):
        hub_dir = copy(city, tmp_path, f"hub-{history}")
        full = read_hub(hub_dir)
        cut = pd.Timestamp("2026-03-03 12:00", tz=full.meta.timezone)  # the feed stops on the second day ...
        short = {t: df[df["ts"] <= cut] if TABLES[t].temporal else df for t, df in full.tables.items()}
        write_hub(Hub(short, full.meta), hub_dir)
        first = agent(hub_dir, address, history).run(once=True)[0]
        assert [o.status for o in first.outcomes] == ["decided"] * 3 and first.live_errors == []  # waiting
        write_hub(full, hub_dir)  # ... and three days of readings arrive after it
        errors[history] = {e.model: e for e in agent(hub_dir, address, history).run(once=True)[0].live_errors}
    assert set(errors[HISTORY]) == set(errors[None]) and len(errors[None]) == 3
    for model, e in errors[None].items():
        got = errors[HISTORY][model]
        assert (got.n, got.mae, got.rmse, got.coverage) == (e.n, e.mae, e.rmse, e.coverage) and e.n > 0
    cycle, scoring = reads[-2:]  # the last cycle read what its models need, then the old forecasts' targets
    assert cycle.origin.since["traffic"] > cut
    assert dates_read(scoring, "traffic") == ["2026-03-03", "2026-03-05", "2026-03-06"]  # targets, and the clock


def test_a_model_reaching_further_back_than_the_history_is_named_with_what_it_needs(city, served):
    facts = facts_of(served["traffic-synthetic"], "traffic-synthetic")
    hub = read_hub(city, recent=pd.Timedelta(days=1))
    newest = hub.table("traffic")["ts"].max()
    hub.origin.since["traffic"] = newest - pd.Timedelta("10min")  # as if the history were shorter than the window
    with pytest.raises(ConfigError, match=r"reaches back to .* but the agent reads the hub's traffic from .*loop\.hi"):
        sense(hub, facts)
    hub.origin.since["traffic"] = newest - pd.Timedelta("1h")
    assert sense(hub, facts).anchor == newest


def test_a_history_shorter_than_what_a_cycle_reads_back_is_refused_at_load():
    with pytest.raises(ConfigError, match=r"loop.history \(12h\) is shorter than drift.window \(1d\)"):
        load_agent_config(overrides={"loop": {"history": "12h"}, "alerts": {"usual_days": 1}})
    with pytest.raises(ConfigError, match=r"shorter than alerts.usual_days \(7d\).*set it to null"):
        load_agent_config(overrides={"loop": {"history": "3d"}})
    assert load_agent_config(overrides={"loop": {"history": None}, "alerts": {"usual_days": 60}}).loop.history is None


def dates_read(hub: Hub, table: str) -> list[str]:
    return sorted({f"{d:%Y-%m-%d}" for d in hub.table(table)["ts"].dt.tz_convert(hub.meta.timezone)})


def test_a_cycle_reads_of_each_table_what_its_models_need(city, address, tmp_path, reads):
    """With the default loop.history (35 days, more than the city holds) a cycle still reads only the days its drift
    window, usual demand and forecasts need, and decides and scores as a cycle that read the whole hub."""
    overrides = {"drift": {"window": "6h"}, "alerts": {"usual_days": 1}}
    runs = {}
    for history in (None, "35d"):
        cfg = agent(copy(city, tmp_path, f"h-{history}"), address, history).cfg
        runs[history] = Agent(
            cfg.model_copy(update={k: getattr(cfg, k).model_copy(update=v) for k, v in overrides.items()})
        ).run(once=True)[0]
    whole, planned = reads
    # traffic: 6 h of drift + the 1-hour horizon the window may end before the newest reading + 1 h of score grace
    # is one day, read with the day before it; the one-hour input adds nothing further back
    assert dates_read(planned, "traffic") == ["2026-03-05", "2026-03-06"]
    assert dates_read(planned, "demand") == ["2026-03-04", "2026-03-05", "2026-03-06"]  # a day of usual demand
    assert dates_read(planned, "weather") == ["2026-03-05", "2026-03-06"]  # no model reads it: the hub's clock
    assert len(dates_read(whole, "traffic")) == 5 and not planned.origin.read_dates
    a, b = runs[None], runs["35d"]
    assert [o.status for o in b.outcomes] == [o.status for o in a.outcomes] == ["decided"] * 3
    pd.testing.assert_frame_equal(a.decisions.drop(columns="ts"), b.decisions.drop(columns="ts"))
    assert {m: r.drifted for m, r in a.drift.items()} == {m: r.drifted for m, r in b.drift.items()}
    for model in a.drift:
        assert a.drift[model].scores == pytest.approx(b.drift[model].scores)


@pytest.mark.parametrize(
    ("days_back", "read"),
    [
        (2, ["2026-03-03", "2026-03-04", "2026-03-05", "2026-03-06"]),
        (4, ["2026-03-02", "2026-03-03", "2026-03-05", "2026-03-06"]),  # 03-04 is neither recent nor a frame's
    ],
)
def test_a_model_with_period_frames_reads_their_dates_and_not_the_days_between(city, served, days_back, read):
    """A UCTB-style input (the last steps and the same steps days back) builds the same window from the dates the
    cycle reads as from the whole hub, with the dates between them left unread."""
    base = facts_of(served["traffic-synthetic"], "traffic-synthetic")
    period = -days_back * 288
    facts = replace(base, input_offsets=(period - 5, *range(period - 4, period + 1), *range(-5, 1)))
    cfg = load_agent_config(overrides={"drift": {"window": "6h"}, "alerts": {"usual_days": 1}})
    meta = read_manifest(city)
    reach = cycle_reach(cfg, [facts], pd.Timedelta(days=35), meta)
    hub = read_hub(city, recent=pd.Timedelta(days=35), reach=reach)
    assert dates_read(hub, "traffic") == read
    whole = sense(read_hub(city), facts)
    window = sense(hub, facts)
    assert window.anchor == whole.anchor
    np.testing.assert_array_equal(window.x, whole.x)

    short = read_hub(city, recent=pd.Timedelta(days=1), reach=cycle_reach(cfg, [facts], pd.Timedelta(days=1), meta))
    with pytest.raises(ConfigError, match=r"reaches back to 2026-03-0.*raise loop\.history to at least"):
        sense(short, facts)


def test_a_model_the_server_did_not_describe_gets_all_of_the_history(city):
    cfg = load_agent_config(overrides={"alerts": {"usual_days": 1}})
    reach = cycle_reach(cfg, [], pd.Timedelta(days=3), read_manifest(city), unknown=["traffic"])
    assert reach["traffic"] == reach["decisions"] == Reach(pd.Timedelta(days=3))
    assert reach["demand"] == Reach(pd.Timedelta(0))


def test_a_replay_reads_the_dates_of_its_window_and_decides_as_on_the_whole_hub(city, address, tmp_path, reads):
    """`--at` a time days before the hub's newest reading: the cycle reads the window's date besides what it reads
    anyway, never the whole hub, and decides as a cycle that read it whole."""
    overrides = {"drift": {"window": "6h"}, "alerts": {"usual_days": 1}}
    runs = {}
    for history in (None, "35d"):
        cfg = agent(copy(city, tmp_path, f"r-{history}"), address, history).cfg
        cfg = cfg.model_copy(update={k: getattr(cfg, k).model_copy(update=v) for k, v in overrides.items()})
        runs[history] = Agent(cfg).run(once=True, at="2026-03-03 08:00")[0]
    whole, planned = reads
    assert dates_read(planned, "traffic") == ["2026-03-03", "2026-03-05", "2026-03-06"]  # the window's, the recent
    assert dates_read(planned, "demand") == ["2026-03-03", "2026-03-04", "2026-03-05", "2026-03-06"]
    assert len(dates_read(whole, "traffic")) == 5
    a, b = runs[None], runs["35d"]
    assert [o.status for o in b.outcomes] == [o.status for o in a.outcomes] == ["decided"] * 3
    assert {o.anchor for o in b.outcomes} == {pd.Timestamp("2026-03-03 08:00", tz=whole.meta.timezone)}
    assert [o.message for o in b.outcomes] == [o.message for o in a.outcomes], [o.message for o in a.outcomes]
    assert not a.decisions.empty
    pd.testing.assert_frame_equal(a.decisions.drop(columns="ts"), b.decisions.drop(columns="ts"))


@pytest.mark.parametrize("operating", [False, True])
def test_what_a_cycle_reads_holds_every_step_of_the_window_wherever_in_its_date_the_newest_reading_is(operating):
    """On a regular grid an offset is steps × step; on an operating-hours grid (a metro's 06:00–24:00) it skips the
    nights, so a week of slots back is 7 days, not 126 hours: the reach must hold the dates either way."""
    extra = {"slots_per_day": 18, "first_slot": "06:00"} if operating else {}
    meta = HubMeta(step="1h", timezone="Asia/Shanghai", extra=extra)
    days = pd.date_range("2026-03-01", periods=40, freq="D", tz=meta.timezone)
    times = time_grid(meta, days[0], days[-1] + pd.Timedelta(hours=23))
    hub = Hub({"demand": pd.DataFrame({"zone_id": "z0", "ts": times, "count": 1.0})}, meta)
    per_day = 18 if operating else 24
    offsets = (-4 * 7 * per_day, -7 * per_day, -per_day - 1, -per_day, -2, -1, 0)
    facts = ModelFacts("m", "1", "demand", ["z0"], "1h", offsets, (1, 2, 3), ["count"], "count")
    cfg = load_agent_config(overrides={"alerts": {"usual_days": 1}})
    reach = cycle_reach(cfg, [facts], pd.Timedelta(days=35), meta)["demand"]
    newest = days[-1].date()
    first, extra_dates = reach.dates(newest)
    last_day = times[times.date == newest]
    for anchor in (last_day[0], last_day[len(last_day) // 2], last_day[-1]):
        for t in steps_at(hub, anchor, offsets):
            assert t.date() >= first or t.date() in extra_dates, (anchor, t)
    assert len(extra_dates) <= 14  # the frames' dates (a day either side on operating hours), not all 28 between


def test_the_decisions_a_cycle_reads_are_those_its_windows_may_already_have():
    meta = HubMeta(step="5min", timezone="Asia/Shanghai")
    hour = ModelFacts("m", "1", "traffic", ["s0"], "5min", (-1, 0), tuple(range(1, 13)), ["speed"], "speed")
    today = date(2026, 12, 7)
    live = decisions_reach([hour], meta, {"traffic": today, "decisions": today})
    assert live.dates(today)[0] == date(2026, 12, 6)  # an hour before today's first window, and a DST hour
    stalled = decisions_reach([hour], meta, {"traffic": date(2026, 12, 3), "decisions": today})
    assert stalled.dates(today)[0] == date(2026, 12, 2)  # the feed stopped: its window, decided then, is that old
    assert decisions_reach([hour], meta, {"traffic": date(2027, 1, 1), "decisions": today}) is None  # future data
    assert decisions_reach([hour], meta, {"traffic": today}) is None  # none decided yet: read whatever there is


def test_a_restarted_agent_on_a_live_hub_reads_recent_decisions_and_decides_nothing_twice(tmp_path, address, reads):
    """Readings dated today, as on a live hub: a restarted agent finds its decisions in the dates it reads (the
    ones its windows could have been decided on), not in all of loop.history."""
    tz = "Asia/Shanghai"
    today = pd.Timestamp.now(tz=tz).normalize()
    hub_dir = synthetic_city(tmp_path / "hub", days=3, start=f"{today - pd.Timedelta(days=2):%Y-%m-%d}")
    old = today - pd.Timedelta(days=20)  # an old decision, of no window this agent can decide now
    row = {"ts": [old + pd.Timedelta(hours=9)], "kind": "congestion_alert", "target_id": ["s0"], "value": 1.0}
    write_part(hub_dir / "decisions" / f"date={old:%Y-%m-%d}", pd.DataFrame(row))
    first = agent(hub_dir, address, "35d").run(once=True)[0]
    assert [o.status for o in first.outcomes] == ["decided"] * 3
    again = agent(hub_dir, address, "35d").run(once=True)[0]  # a restart: a new agent, nothing in memory
    for before, after in zip(first.outcomes, again.outcomes, strict=True):
        if before.decisions.empty:  # a window that gave no decisions leaves nothing in the hub: asked again
            assert after.status == "decided" and after.decisions.empty
        else:
            assert after.status == "unchanged" and "already decided" in after.message
    assert sum(not o.decisions.empty for o in first.outcomes) >= 2
    decisions = dates_read(reads[-1], "decisions")
    assert f"{old:%Y-%m-%d}" not in decisions and decisions[-1] == f"{pd.Timestamp.now(tz=tz):%Y-%m-%d}"
