"""The agent loop against a real gRPC server: decisions appended with model versions, missing windows skipped,
a server restart ridden out with backoff, live error from actuals, drift that starts one retrain per period."""

import json
import re
import shutil
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cityagent.agent.act import congestion_alerts, rebalancing, risk_hotspots, usual_demand
from cityagent.agent.agent_config import load_agent_config
from cityagent.agent.cli import app
from cityagent.agent.drift import reference_from, save_reference
from cityagent.agent.drift_hub import hub_values, recent_start
from cityagent.agent.drift_watch import DriftWatch, reference_path
from cityagent.agent.grid import OffGrid
from cityagent.agent.loop import Agent
from cityagent.agent.schedule import Scheduler
from cityagent.agent.sense import ModelFacts, WindowMissing, sense, steps_at
from cityagent.agent.think import Backoff, Forecast, ServingClient
from cityagent.errors import ConfigError
from cityagent.hub import Hub, read_hub, write_hub
from cityagent.hub.tensor import to_tensor
from cityagent.serving.background import ServerThread
from cityagent.serving.config import ServingConfig
from cityagent.training.onnx_meta import read_metadata
from tests.agent.agent_factories import export_baselines, synthetic_city

MODELS = ["traffic-synthetic", "demand-synthetic", "risk-synthetic"]
CHANNELS = {"traffic": ["speed"], "demand": ["count", "supply"], "incidents": ["severity"]}
FIVE = pd.Timedelta("5min")  # the synthetic city's step


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return synthetic_city(tmp_path_factory.mktemp("city") / "hub", days=3)


@pytest.fixture(scope="module")
def models(template, tmp_path_factory):
    return export_baselines(read_hub(template), tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def peak(template) -> pd.Timestamp:
    """The second day's morning step where the most sensors crawl below half their free-flow speed."""
    hub = read_hub(template)
    st = to_tensor(hub, "traffic", ["speed"])
    free = hub.table("sensors")["free_flow"].to_numpy()
    slow = (st.channel("speed") < 0.5 * free).sum(axis=1)  # [T] congested sensors per step
    day2 = (st.ts.day == st.ts[0].day + 1) & (st.ts.hour >= 6) & (st.ts.hour < 11)
    t = st.ts[day2][int(np.argmax(slow[day2]))]
    assert slow[st.ts.get_loc(t)] > 0, "the synthetic city should have a congested morning"
    return t


@pytest.fixture
def hub_dir(template, tmp_path):
    """A private copy of the city, with drift references of the served runs built from its first days."""
    shutil.copytree(template, tmp_path / "hub")
    hub = read_hub(template)
    for domain, table in (("traffic", "traffic"), ("demand", "demand"), ("risk", "incidents")):
        values, nodes = hub_values(hub, table, CHANNELS[table], end=recent_start(hub, table, "1d"))
        save_reference(reference_from(values, metrics={"mae": 100.0}, nodes=nodes), reference_path(f"run-{domain}"))
    return tmp_path / "hub"


@pytest.fixture
def start_server(models):
    started: list[ServerThread] = []

    def start(port: int = 0) -> ServerThread:
        specs = [f"{name}={path}" for name, path in models.items()]
        cfg = {"port": port, "metrics_port": None, "models": specs, "registry": {"poll_interval_s": 0}, "grace_s": 0}
        started.append(ServerThread(ServingConfig.model_validate(cfg)).start())
        return started[-1]

    yield start
    for s in started:
        s.stop()


def config(hub_dir, address, **loop):
    loop = {"retrain_on_drift": False, "retries": 4, "backoff_s": 0.1, **loop}
    return load_agent_config(overrides={"hub": str(hub_dir), "serving": {"address": address}, "loop": loop})


def test_a_cycle_appends_decisions_stamped_with_model_versions(hub_dir, start_server, peak):
    server = start_server()
    agent = Agent(config(hub_dir, server.address))
    first = agent.cycle(at=peak)
    assert [(o.model, o.status, o.version) for o in first.outcomes] == [(m, "decided", "1") for m in MODELS]
    hub = read_hub(hub_dir)
    table = hub.table("decisions")
    assert set(table["model"]) <= set(MODELS) and set(table["model_version"]) == {"1"}
    assert {"congestion_alert", "risk_hotspot"} <= set(table["kind"])
    assert table["ts"].dt.tz.key == hub.meta.timezone

    # last_value forecasts each sensor's speed at the anchor: exactly the sensors below half free-flow alert
    speed = hub.table("traffic").set_index("ts").loc[peak].set_index("sensor_id")["speed"]
    free = hub.table("sensors").set_index("sensor_id")["free_flow"]
    want = set(speed.index[speed < 0.5 * free.reindex(speed.index)])
    alerts = table[table["kind"] == "congestion_alert"]
    assert want and set(alerts["target_id"]) == want
    assert np.allclose(alerts.set_index("target_id")["value"].sort_index(), speed[sorted(want)], atol=1e-3)

    risk = table[table["kind"] == "risk_hotspot"]
    assert 0 < len(risk) <= 5 and list(risk["value"]) == sorted(risk["value"], reverse=True)

    assert set(table["anchor"]) == {peak.isoformat()}  # the window each decision came from

    second = agent.cycle(at=peak)  # the same window again: decided once, nothing appended
    assert [o.status for o in second.outcomes] == ["unchanged"] * 3
    pd.testing.assert_frame_equal(read_hub(hub_dir).table("decisions"), table)


def test_a_window_with_missing_data_is_reported_and_skipped(hub_dir, start_server, peak):
    hub = read_hub(hub_dir)
    traffic = hub.table("traffic")
    hole = (traffic["sensor_id"] == "s0003") & (traffic["ts"] == peak - pd.Timedelta("10min"))
    assert hole.sum() == 1
    write_hub(Hub({**hub.tables, "traffic": traffic[~hole].reset_index(drop=True)}, hub.meta), hub_dir)

    server = start_server()
    client = ServingClient(server.address)
    facts = client.facts("traffic-synthetic")
    with pytest.raises(WindowMissing, match=r"lacks 1 of 48 readings.*'s0003'"):
        sense(read_hub(hub_dir), facts, peak)

    lines = []
    report = Agent(config(hub_dir, server.address), say=lines.append).cycle(at=peak)
    status = {o.model: o.status for o in report.outcomes}
    assert status == {"traffic-synthetic": "skipped", "demand-synthetic": "decided", "risk-synthetic": "decided"}
    assert any("traffic-synthetic: skipped" in line and "nothing is filled in" in line for line in lines)
    assert "congestion_alert" not in set(read_hub(hub_dir).table("decisions")["kind"])


def test_the_agent_rides_out_a_server_restart_and_keeps_every_decision(hub_dir, start_server, peak):
    server = start_server()
    port = server.port

    def restart_after_traffic(outcome):
        if outcome.model == "traffic-synthetic":
            server.stop()  # serving goes down mid-cycle, comes back 1 s later on the same port
            threading.Timer(1.0, lambda: start_server(port)).start()

    lines: list[str] = []
    cfg = config(hub_dir, server.address, retries=8, backoff_s=0.2)
    report = Agent(cfg, say=lines.append, after_model=restart_after_traffic).cycle(at=peak)
    assert [o.status for o in report.outcomes] == ["decided"] * 3
    assert any("retry 1 of 8" in line for line in lines)
    table = read_hub(hub_dir).table("decisions")
    for o in report.outcomes:
        assert (table["model"] == o.model).sum() == len(o.decisions)


def test_serving_down_for_good_fails_the_rest_but_keeps_decisions_already_made(hub_dir, start_server, peak):
    server = start_server()
    cfg = config(hub_dir, server.address, retries=2, backoff_s=0.05)
    report = Agent(cfg, after_model=lambda o: server.stop()).cycle(at=peak)
    assert [o.status for o in report.outcomes] == ["decided", "failed", "failed"]
    assert "did not answer after 3 attempt(s)" in report.outcomes[1].message
    table = read_hub(hub_dir).table("decisions")
    assert set(table["model"]) == {"traffic-synthetic"} and len(table) == len(report.outcomes[0].decisions)


def test_backoff_doubles_up_to_its_cap():
    assert list(Backoff(retries=5, base_s=0.5, max_s=3.0).delays()) == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_live_error_is_recorded_when_actuals_arrive_and_unchanged_windows_are_not_redecided(
    hub_dir, start_server, peak
):
    server = start_server()
    agent = Agent(config(hub_dir, server.address))
    reports = agent.run(at=str(peak.tz_localize(None)), interval="1ms", max_cycles=2)
    errors = {e.model: e for e in reports[0].live_errors}
    assert set(errors) == set(MODELS) and all(e.n > 0 for e in errors.values())

    # last_value's live error, computed by hand from the hub: |speed at the anchor - speed at each target|
    hub = read_hub(hub_dir)
    targets = steps_at(hub, peak, tuple(range(1, 13)))
    st = to_tensor(hub, "traffic", ["speed"])
    now, later = st.channel("speed")[st.ts.get_loc(peak)], st.channel("speed")[st.ts.get_indexer(targets)]
    assert errors["traffic-synthetic"].mae == pytest.approx(float(np.abs(later - now).mean()), rel=1e-4)
    assert errors["traffic-synthetic"].n == later.size

    assert [o.status for o in reports[1].outcomes] == ["unchanged"] * 3
    assert reports[1].live_errors == []  # each forecast is scored once
    assert len(read_hub(hub_dir).table("decisions")) == len(reports[0].decisions)


def close_a_road(hub_dir) -> None:
    """A road closure: the whole last day of traffic 40 % slower, so the traffic model's inputs drift."""
    hub = read_hub(hub_dir)
    traffic = hub.table("traffic").copy()
    tail = traffic["ts"] >= recent_start(hub, "traffic", "1d")
    traffic.loc[tail, "speed"] *= 0.6
    write_hub(Hub({**hub.tables, "traffic": traffic}, hub.meta), hub_dir)


def test_drift_on_a_shifted_hub_starts_one_retrain_per_period(hub_dir, start_server):
    close_a_road(hub_dir)
    server = start_server()
    cfg = config(hub_dir, server.address)
    started: list[str] = []
    clock = [datetime(2026, 3, 10, tzinfo=UTC)]
    agent = Agent(cfg, drift=DriftWatch(cfg, started.append, now=lambda: clock[0]))
    first = agent.cycle()
    assert first.drift["traffic-synthetic"].drifted and not first.drift["demand-synthetic"].drifted
    assert started == ["traffic"] and "retrain of traffic started" in first.drift["traffic-synthetic"].notes
    clock[0] += timedelta(hours=5)
    held = agent.cycle()  # still drifted, but within retrain.min_period (1 d) of the retrain it started: says so
    assert started == ["traffic"]
    assert (
        "retrain of traffic held until 2026-03-11 00:00 UTC: its last retrain (started by drift) was at "
        "2026-03-10 00:00 UTC and retrain.min_period is 1d"
    ) in held.drift["traffic-synthetic"].notes
    clock[0] += timedelta(days=1, minutes=1)
    agent.cycle()
    assert started == ["traffic", "traffic"]


def test_drift_held_by_a_retrain_that_finished_on_schedule_names_it(hub_dir, start_server):
    close_a_road(hub_dir)
    finished = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
    Scheduler({"traffic": "0 3 * * *"}, lambda task: None, now=lambda: finished).run_now("traffic")
    server = start_server()
    overrides = {"hub": str(hub_dir), "serving": {"address": server.address}, "retrain": {"min_period": "12h"}}
    cfg = load_agent_config(overrides=overrides | {"loop": {"retrain_on_drift": False, "retries": 1}})
    started: list[str] = []
    watch = DriftWatch(cfg, started.append, now=lambda: finished + timedelta(hours=2))
    report = Agent(cfg, drift=watch).cycle()
    assert started == []
    assert (
        "retrain of traffic held until 2026-03-10 15:00 UTC: its last retrain (finished) was at "
        "2026-03-10 03:00 UTC and retrain.min_period is 12h"
    ) in report.drift["traffic-synthetic"].notes


def test_drift_says_why_no_retrain_starts_when_retrains_are_off_or_cannot_start(hub_dir, start_server):
    close_a_road(hub_dir)
    server = start_server()
    cfg = config(hub_dir, server.address)  # loop.retrain_on_drift: false
    report = Agent(cfg).cycle()
    notes = report.drift["traffic-synthetic"].notes
    assert "no retrain of traffic: loop.retrain_on_drift is off (or --no-retrain)" in notes

    def broken(task: str) -> None:
        raise FileNotFoundError(2, "No such file or directory", "python")

    watch = DriftWatch(cfg, broken)
    failed = Agent(cfg, drift=watch).cycle()
    assert any(
        n.startswith("retrain of traffic could not start: ") and "No such file" in n
        for n in failed.drift["traffic-synthetic"].notes
    )
    assert watch.last_retrain("traffic") is None  # not held back by a retrain that never started


def test_cli_agent_run_prints_why_drift_started_no_retrain(hub_dir, start_server, tmp_path):
    close_a_road(hub_dir)
    server = start_server()
    quick = tmp_path / "agent.yaml"
    quick.write_text("loop: {retries: 1, backoff_s: 0.05}\n")
    args = ["agent", "run", "--once", "--config", str(quick), "--hub", str(hub_dir), "--server", server.address]
    result = CliRunner().invoke(app, [*args, "--no-retrain"], terminal_width=400)
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "drift traffic-synthetic" in line)
    assert line.endswith("no retrain of traffic: loop.retrain_on_drift is off (or --no-retrain)")


def test_no_drift_on_the_unshifted_hub(hub_dir, start_server):
    server = start_server()
    cfg = config(hub_dir, server.address)
    started: list[str] = []
    report = Agent(cfg, drift=DriftWatch(cfg, started.append)).cycle()
    assert set(report.drift) == set(MODELS) and not any(d.drifted for d in report.drift.values())
    assert started == []


def test_a_champion_without_a_drift_reference_is_named_once_with_the_fix(hub_dir, start_server):
    reference_path("run-traffic").unlink()  # a run trained before every run logged one
    server = start_server()
    cfg = config(hub_dir, server.address)
    agent = Agent(cfg, drift=DriftWatch(cfg, None))
    first = [n for n in agent.cycle().notes if "no drift reference" in n]
    assert first == [
        "traffic-synthetic: no drift reference for run run-traffic (trained before every run logged one); its drift "
        "is not checked until `cityagent retrain --now traffic` replaces it"
    ]
    assert not any("no drift reference" in n for n in agent.cycle().notes)  # not again every cycle


def test_a_tracking_server_that_is_down_costs_seconds_and_says_so(hub_dir, start_server, monkeypatch):
    """No local reference and MLflow down: one quick /health check per cycle, not minutes of MlflowClient retries."""
    import socket
    import time

    from cityagent.agent import drift_watch

    with socket.socket() as s:  # a port nothing listens on: connection refused
        s.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for domain in ("traffic", "demand", "risk"):
        reference_path(f"run-{domain}").unlink()
    checks: list[str] = []
    monkeypatch.setattr(drift_watch, "unreachable", lambda u: checks.append(u) or "Connection refused")
    server = start_server()
    cfg = config(hub_dir, server.address)
    agent = Agent(cfg, drift=DriftWatch(cfg, None))
    t0 = time.monotonic()
    report = agent.cycle()
    assert time.monotonic() - t0 < 30 and checks == [uri]  # one health check for all three models
    assert not report.drift
    for model in MODELS:
        assert f"tracking server {uri} is not reachable (Connection refused); drift not checked for {model}" in (
            report.notes
        )
    assert not any("no drift reference" in n for n in report.notes)


def test_cli_agent_run_once_prints_the_decisions(hub_dir, start_server, peak, tmp_path):
    server = start_server()
    quick = tmp_path / "agent.yaml"
    quick.write_text("loop: {retries: 1, backoff_s: 0.05}\n")
    args = ["agent", "run", "--once", "--config", str(quick), "--hub", str(hub_dir), "--server", server.address]
    args += ["--no-retrain", "--at", str(peak.tz_localize(None))]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "decisions this cycle" in result.output and "congestion_alert" in result.output
    assert "traffic-synthetic: decided" in result.output
    line = next(x for x in result.output.splitlines() if "traffic-synthetic: decided" in x)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4} traffic-synthetic: decided: \d+ decision", line), line

    server.stop()
    down = CliRunner().invoke(app, args, terminal_width=200)
    assert down.exit_code == 1 and "traffic-synthetic: failed" in down.output


def test_cli_agent_run_prints_each_failed_or_skipped_model_once(hub_dir, start_server, peak, tmp_path):
    server = start_server()
    quick = tmp_path / "agent.yaml"
    quick.write_text("loop: {retries: 1, backoff_s: 0.05}\n")
    server.stop()
    args = ["agent", "run", "--once", "--config", str(quick), "--hub", str(hub_dir), "--server", server.address]
    down = CliRunner().invoke(app, [*args, "--no-retrain", "--at", str(peak.tz_localize(None))], terminal_width=200)
    assert down.exit_code == 1
    assert [down.output.count(f"{m}: failed") for m in MODELS] == [1, 1, 1], down.output


def test_a_replay_time_between_steps_is_refused_before_any_model_is_asked(hub_dir, start_server, peak):
    server = start_server()
    agent = Agent(config(hub_dir, server.address))
    off = peak + pd.Timedelta("2min")
    want = f"--at {off.isoformat()} is not on the hub's 5-minute grid: use {peak:%H:%M} or {peak + FIVE:%H:%M}"
    with pytest.raises(OffGrid) as e:
        agent.cycle(at=off)
    assert str(e.value) == want
    assert not read_hub(hub_dir).has("decisions")
    with pytest.raises(OffGrid):  # the long-running loop stops too: waiting never puts the time on the grid
        agent.run(at=str(off.tz_localize(None)), interval="1ms", max_cycles=3)


def test_cli_agent_run_refuses_a_replay_time_between_steps(hub_dir, start_server, peak, tmp_path):
    server = start_server()
    quick = tmp_path / "agent.yaml"
    quick.write_text("loop: {retries: 1, backoff_s: 0.05}\n")
    off = (peak + pd.Timedelta("7min")).tz_localize(None)
    args = ["agent", "run", "--once", "-c", str(quick), "--hub", str(hub_dir), "--server", server.address]
    result = CliRunner().invoke(app, [*args, "--no-retrain", "--at", str(off)], terminal_width=200)
    assert isinstance(result.exception, OffGrid), result.output
    near = f"use {peak + FIVE:%H:%M} or {peak + 2 * FIVE:%H:%M}"
    assert str(result.exception).endswith(f"is not on the hub's 5-minute grid: {near}")
    assert "lacks" not in result.output and "skipped" not in result.output


@pytest.mark.parametrize(
    "option, match",
    [
        (["--at", "garbage"], r"--at 'garbage' is not a time; use a hub time such as '2026-03-05 08:00'"),
        (["--interval", "abc"], r"--interval 'abc' is not a duration; use e\.g\. '30s', '5min' or '1h'"),
        (["--interval", "-5min"], r"--interval '-5min' is not a positive duration"),
    ],
)
def test_cli_agent_run_refuses_a_bad_time_or_interval_before_starting(tmp_path, option, match):
    quick = tmp_path / "agent.yaml"
    quick.write_text("loop: {retries: 1}\n")
    args = ["agent", "run", "--once", "-c", str(quick), "--no-retrain", "--hub", str(tmp_path / "no-hub"), *option]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ConfigError), result.output
    assert re.search(match, str(result.exception)) and "agent: hub" not in result.output  # nothing started


def facts_of(path, name: str) -> ModelFacts:
    """What the server's metadata answer says about a model, read straight from its ONNX file."""
    return ModelFacts.from_parameters(
        name, {k: json.dumps(v) for k, v in read_metadata(path).items()} | {"version": "1"}
    )


def _cut(hub: Hub, keep) -> Hub:
    traffic = hub.table("traffic")
    return Hub({**hub.tables, "traffic": traffic[keep(traffic)].reset_index(drop=True)}, hub.meta)


def test_the_window_ends_at_the_newest_step_every_sensor_has_reported(template, models, peak):
    """Readings of one step arrive seconds apart: a sensor or two ahead of the rest must not silence the model."""
    facts = facts_of(models["traffic-synthetic"], "traffic-synthetic")
    ahead = ["s0000", "s0001"]  # they already report the step after peak; the other six do not yet
    hub = _cut(read_hub(template), lambda t: (t.ts <= peak) | ((t.ts == peak + FIVE) & t.sensor_id.isin(ahead)))
    window = sense(hub, facts)
    assert window.anchor == peak and "2 node(s) already report" in window.note
    complete = _cut(read_hub(template), lambda t: t.ts <= peak)
    assert sense(complete, facts).anchor == peak and sense(complete, facts).note == ""
    # a sensor dead for longer than the forecast reaches: no stale window, the gap is reported naming it
    dead = _cut(read_hub(template), lambda t: (t.ts <= peak + 13 * FIVE) & ((t.ts <= peak) | (t.sensor_id != "s0004")))
    with pytest.raises(WindowMissing, match=r"first 's0004'"):
        sense(dead, facts)


def test_congestion_alerts_below_a_share_of_free_flow(template, models, peak):
    hub = read_hub(template)
    sensors = hub.table("sensors").copy()
    sensors.loc[1, "free_flow"] = np.nan  # unknown free-flow: the absolute congestion_kmh applies
    hub = Hub({**hub.tables, "sensors": sensors}, hub.meta)
    window = sense(hub, facts_of(models["traffic-synthetic"], "traffic-synthetic"), peak)
    free = sensors["free_flow"].to_numpy()
    share = np.array([0.49, np.nan, 0.51, 0.2, 0.9, 0.499, 0.6, 0.3])
    values = np.repeat(np.nan_to_num(free * share, nan=19.0)[None, :], 12, axis=0)  # [H, N]
    values[5, 6] = 0.45 * free[6]  # one step of the horizon is enough
    cfg = load_agent_config().alerts
    rows = congestion_alerts(Forecast("t", "1", values), window, hub, cfg)
    assert [r["target_id"] for r in rows] == ["s0000", "s0001", "s0003", "s0005", "s0006", "s0007"]
    assert rows[1]["value"] == pytest.approx(19.0) and "< 20 km/h" in rows[1]["detail"]
    assert f"at {window.target_times[5]:%m-%d %H:%M} (< 50% of free-flow" in rows[4]["detail"]


def test_rebalancing_moves_spare_vehicles_to_a_surging_zone(template, models, peak):
    hub = read_hub(template)
    window = sense(hub, facts_of(models["demand-synthetic"], "demand-synthetic"), peak)
    usual = usual_demand(hub, window, days=7)  # [H, N]
    demand = hub.table("demand").set_index(["zone_id", "ts"])["count"]
    slot = window.target_times[0]
    by_hand = np.mean([demand[("z002", slot - pd.Timedelta(days=d))] for d in (1, 2) if slot.day - d >= 2])
    assert usual[0, 2] == pytest.approx(by_hand)
    values = usual.copy()
    values[:, 0] *= 3.0  # z000 surges to 3x its usual departures
    values[:, 1] *= 0.2  # z001 expects a fifth of its usual: it has vehicles to spare
    cfg = load_agent_config().alerts
    rows = rebalancing(Forecast("d", "1", values), window, hub, cfg)
    need, spare = 2 * usual[:, 0].sum(), 0.8 * usual[:, 1].sum()
    assert [(r["target_id"], r["value"]) for r in rows] == [("z000", float(int(min(need, spare))))]
    assert "from z001 to z000" in rows[0]["detail"]
    assert rebalancing(Forecast("d", "1", usual.copy()), window, hub, cfg) == []  # a usual day: nothing to move


def test_quantile_forecasts_decide_on_the_interval_when_asked(template, models, peak):
    hub = read_hub(template)
    facts = facts_of(models["traffic-synthetic"], "traffic-synthetic")
    window = sense(hub, facts, peak)
    free = hub.table("sensors")["free_flow"].to_numpy()
    median = np.repeat((0.45 * free)[None, :], 12, axis=0)  # every segment under 50 % of free flow
    upper = median.copy()
    upper[:, 2:] = 0.55 * free[2:]  # ... but for most of them the interval reaches above the limit
    y = np.stack([median - 5, median, upper], -1)  # [H, N, Q] as the server answers
    fc = Forecast.of("t", "1", y, ModelFacts(**{**facts.__dict__, "quantiles": [0.1, 0.5, 0.9]}))
    assert fc.band == (0.1, 0.9) and np.array_equal(fc.values, median) and np.array_equal(fc.upper, upper)

    def alerted(mode: str) -> list[str]:
        cfg = load_agent_config(overrides={"alerts": {"intervals": mode}}).alerts
        return [r["target_id"] for r in congestion_alerts(fc, window, hub, cfg)]

    assert alerted("median") == alerted("possible") == list(window.facts.nodes)
    assert alerted("confident") == ["s0000", "s0001"]  # the whole interval below the limit
    rows = congestion_alerts(fc, window, hub, load_agent_config().alerts)
    lo, hi = median[0, 0] - 5, upper[0, 0]
    assert f"(10%–90% interval {lo:.1f}–{hi:.1f} km/h) (< 50% of free-flow" in rows[0]["detail"]
    point = Forecast.of("t", "1", median, facts)  # a point model: no interval, the same decisions in every mode
    assert (
        point.lower is None
        and "interval" not in congestion_alerts(point, window, hub, load_agent_config().alerts)[0]["detail"]
    )

    risk_facts = facts_of(models["risk-synthetic"], "risk-synthetic")
    risk_window = sense(hub, risk_facts, peak)
    values = np.zeros((12, 4))
    values[:, :3] = [0.4, 0.3, 0.2]
    lower = values * [0.1, 1.0, 0.9, 0]  # z000's forecast is the least certain
    risk = Forecast("r", "1", values, lower, values * 2, (0.1, 0.9))
    cfg = load_agent_config(overrides={"alerts": {"risk_top_k": 2, "intervals": "confident"}}).alerts
    assert [r["target_id"] for r in risk_hotspots(risk, risk_window, hub, cfg)] == ["z001", "z002"]


def test_risk_hotspots_rank_the_top_cells_over_the_look_ahead(template, models, peak):
    hub = read_hub(template)
    facts = facts_of(models["risk-synthetic"], "risk-synthetic")
    window = sense(hub, facts, peak)
    values = np.zeros((12, 4))
    values[:6] = [0.1, 0.3, 0.2, 0.0]  # the first half hour
    values[6:, 3] = 5.0  # z003 is risky only after the first half hour
    cfg = load_agent_config(overrides={"alerts": {"risk_top_k": 2, "risk_window": "30min"}}).alerts
    rows = risk_hotspots(Forecast("r", "1", values), window, hub, cfg)
    assert [(r["target_id"], round(r["value"], 6)) for r in rows] == [("z001", 1.8), ("z002", 1.2)]
    masked = ModelFacts(**{**facts.__dict__, "eval_mask": [True, False, True, True]})
    window.facts = masked
    assert [r["target_id"] for r in risk_hotspots(Forecast("r", "1", values), window, hub, cfg)] == ["z002", "z000"]
