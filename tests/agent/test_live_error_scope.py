"""Live error is scored against the hub a forecast was made on, once its actuals are complete (or overdue by the
grace), with its coverage recorded; and each forecast is remembered and scored once."""

import json
import shutil
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from cityagent.agent import live_error
from cityagent.agent.live_error import SCORE_GRACE, hub_identity, live_errors, remember, score_pending
from cityagent.agent.loop import Agent, CycleReport
from cityagent.agent.sense import readings, sense
from cityagent.agent.think import Forecast
from cityagent.errors import ConfigError
from cityagent.hub import Hub, read_hub, write_hub
from cityagent.hub.hub import HubMeta
from tests.agent.test_loop import FIVE, config, facts_of, hub_dir, models, peak, template  # noqa: F401


def forecast_at(hub: Hub, models, name: str, anchor: pd.Timestamp, value: float):  # noqa: F811
    """A window of ``name`` at ``anchor`` and a flat forecast of ``value`` for it (no server needed)."""
    window = sense(hub, facts_of(models[name], name), anchor)
    shape = (len(window.target_times), len(window.facts.nodes))
    return window, Forecast(name, window.facts.version, np.full(shape, value, dtype=np.float32))


def arrive(full: Hub, hub_dir, until: pd.Timestamp, missing=None) -> Hub:  # noqa: F811
    """Rewrite the hub as it stood at ``until``: every reading up to then, but the traffic rows ``missing`` picks."""
    tables = dict(full.tables)
    for name in ("traffic", "demand", "incidents", "weather"):
        if name in tables:
            df = tables[name]
            keep = df["ts"] <= until
            if name == "traffic" and missing is not None:
                keep &= ~missing(df)
            tables[name] = df[keep].reset_index(drop=True)
    write_hub(Hub(tables, full.meta), hub_dir)
    return read_hub(hub_dir)


def test_a_forecast_waits_for_every_sensor_then_the_grace_and_records_its_coverage(hub_dir, models, peak):  # noqa: F811
    full = read_hub(hub_dir)
    hub_id = hub_identity(hub_dir, full.meta)
    window, fc = forecast_at(full, models, "traffic-synthetic", peak, 40.0)
    remember(window, fc, hub_id)
    targets, last = window.target_times, window.target_times[-1]
    late = lambda df: (df["sensor_id"] == "s0003") & df["ts"].isin(targets[-3:])  # noqa: E731

    # every other sensor has reported the last target: not complete, and not overdue
    assert score_pending(arrive(full, hub_dir, last, late), hub_id) == []
    assert score_pending(arrive(full, hub_dir, last + SCORE_GRACE - FIVE, late), hub_id) == []
    hub = arrive(full, hub_dir, last + SCORE_GRACE, late)  # the grace is over: s0003's three readings are lost
    [record] = score_pending(hub, hub_id)
    actual = readings(hub, "traffic", window.facts.nodes, ["speed"], targets)[:, :, 0]  # [H, N]
    assert np.isnan(actual).sum() == 3
    assert record.n == 12 * 8 - 3 and record.coverage == pytest.approx(93 / 96, abs=1e-6)
    assert record.mae == pytest.approx(float(np.nanmean(np.abs(40.0 - actual))), rel=1e-5)
    assert live_errors().loc[0, "coverage"] == pytest.approx(93 / 96, abs=1e-6)

    # complete actuals score at once, with no grace
    window2, fc2 = forecast_at(full, models, "traffic-synthetic", peak + FIVE, 40.0)
    remember(window2, fc2, hub_id)
    [complete] = score_pending(arrive(full, hub_dir, window2.target_times[-1]), hub_id)
    assert complete.n == 96 and complete.coverage == 1.0


def test_a_risk_forecast_waits_out_the_grace_for_late_incident_reports(hub_dir, models, peak):  # noqa: F811
    full = read_hub(hub_dir)
    hub_id = hub_identity(hub_dir, full.meta)
    window, fc = forecast_at(full, models, "risk-synthetic", peak, 0.0)
    remember(window, fc, hub_id)
    last = window.target_times[-1]
    assert score_pending(arrive(full, hub_dir, last + SCORE_GRACE - FIVE), hub_id) == []
    [record] = score_pending(arrive(full, hub_dir, last + SCORE_GRACE), hub_id)
    assert record.coverage == 1.0 and record.n == window.x.shape[2] * len(window.target_times)


def test_a_forecast_is_scored_only_against_the_hub_it_was_made_on(hub_dir, models, peak, tmp_path):  # noqa: F811
    other = tmp_path / "other-hub"
    shutil.copytree(hub_dir, other)  # the same readings, another hub
    hub_a, hub_b = read_hub(hub_dir), read_hub(other)
    id_a, id_b = hub_identity(hub_dir, hub_a.meta), hub_identity(other, hub_b.meta)
    assert id_a != id_b
    renamed = HubMeta(**{**hub_a.meta.to_dict(), "name": "another-city"})
    assert hub_identity(hub_dir, renamed) != id_a  # another hub written at the same path

    window, fc = forecast_at(hub_a, models, "traffic-synthetic", peak, 40.0)
    waiting = remember(window, fc, id_a)
    assert waiting is not None
    assert score_pending(hub_b, id_b) == [] and waiting.exists()  # pointed at hub B: A's forecast is not scored
    [record] = score_pending(hub_a, id_a)
    assert (record.hub, record.hub_id, record.coverage) == (str(hub_dir.resolve()), id_a.id, 1.0)


def test_a_forecast_is_remembered_and_scored_once(hub_dir, models, peak, tmp_path):  # noqa: F811
    hub = read_hub(hub_dir)
    hub_id = hub_identity(hub_dir, hub.meta)
    window, fc = forecast_at(hub, models, "traffic-synthetic", peak, 40.0)
    path = remember(window, fc, hub_id)
    assert path is not None and remember(window, fc, hub_id) is None  # already waiting
    shutil.copy(path, tmp_path / "copy.npz")
    assert len(score_pending(hub, hub_id)) == 1 and not path.exists()

    live_error._ledgers.clear()  # a restarted agent: nothing in memory
    assert remember(window, fc, hub_id) is None  # already scored: not waiting again
    shutil.copy(tmp_path / "copy.npz", path)  # a crash after the record was written but before the file went
    assert score_pending(hub, hub_id) == [] and not path.exists()
    assert len(live_errors()) == 1


def test_the_console_says_when_a_live_error_covers_part_of_the_forecast(capsys):
    from datetime import UTC, datetime

    from cityagent.agent.cli_agent import print_cycle
    from cityagent.agent.live_error import LiveError
    from cityagent.agent.loop import CycleReport

    def row(n: int, coverage: float | None) -> LiveError:
        t = "2026-12-05T10:05:00+08:00"
        return LiveError("traffic-x", "3", None, "traffic", t, t, "2026-12-05T10:15:00+08:00", n, 2.5, 3.0, t, coverage)

    report = CycleReport(datetime.now(UTC), live_errors=[row(93, 93 / 96), row(96, 1.0), row(10, None)])
    print_cycle(report)
    text = " ".join(capsys.readouterr().out.split())  # the console wraps at 80 columns in a pipe
    parts = text.split("live error of ")[1:]
    assert parts[0].strip().endswith("MAE 2.5 over 93 targets, 97% of those forecast (the rest never reported)")
    assert parts[1].strip().endswith("MAE 2.5 over 96 targets") and parts[2].strip().endswith("over 10 targets")


def test_drift_reads_the_live_mae_of_its_own_hub_only():
    from dataclasses import asdict

    from cityagent.agent.live_error import LiveError, agent_dir, recent_mae

    def row(mae: float, n: int, hub_id: str | None) -> dict:
        t = "2026-12-05T10:15:00+08:00"
        return asdict(LiveError("m", "1", None, "traffic", t, t, t, n, mae, mae, t, 1.0, "/h", hub_id))

    agent_dir().mkdir(parents=True, exist_ok=True)
    rows = [row(1.0, 10, "aaaa"), row(9.0, 10, "bbbb"), row(5.0, 10, None)]  # the last: written before hub ids
    (agent_dir() / "live_error.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    since = pd.Timestamp("2026-12-05T00:00:00+08:00")
    assert recent_mae("m", "1", since, "aaaa") == 1.0
    assert recent_mae("m", "1", since, "bbbb") == 9.0
    assert recent_mae("m", "1", since, "cccc") is None
    assert recent_mae("m", "1", since) == 5.0  # no hub named: every row, as before


def test_the_grace_is_the_agents_loop_score_grace(hub_dir, models, peak):  # noqa: F811
    full = read_hub(hub_dir)
    hub_id = hub_identity(hub_dir, full.meta)
    window, fc = forecast_at(full, models, "risk-synthetic", peak, 0.0)
    remember(window, fc, hub_id)
    last = window.target_times[-1]
    agent = Agent(config(hub_dir, "127.0.0.1:1", score_grace="3h"))  # a city whose sensors upload late
    report = CycleReport(started=datetime.now(UTC))
    agent._learn(arrive(full, hub_dir, last + SCORE_GRACE), hub_id, report)
    assert report.live_errors == []  # the default hour is over, this city's three are not
    agent._learn(arrive(full, hub_dir, last + pd.Timedelta("3h")), hub_id, report)
    assert [e.model for e in report.live_errors] == ["risk-synthetic"]
    with pytest.raises(ConfigError, match=r"loop\.score_grace: '0h' is not a positive duration"):
        config(hub_dir, "127.0.0.1:1", score_grace="0h")
