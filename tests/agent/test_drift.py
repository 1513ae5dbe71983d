"""Drift watch: a synthetic hub whose recent day is shifted triggers; an unshifted one does not."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats

from cityagent.agent.agent_config import DriftConfig
from cityagent.agent.drift import drift_report, load_reference, reference_from, save_reference, should_retrain
from cityagent.agent.drift_hub import hub_values, recent_start
from cityagent.agent.drift_stats import ks_statistic, psi
from cityagent.errors import ConfigError
from cityagent.hub import Hub
from cityagent.hub.synth.memory import synth_hub


@pytest.fixture(scope="module")
def city():
    return synth_hub(sensors=8, zones=4, days=3, step="15min", seed=3)


def _split(hub, table: str, channel: str):
    cut = recent_start(hub, table, "1d")
    train, nodes = hub_values(hub, table, [channel], end=cut)
    recent, _ = hub_values(hub, table, [channel], start=cut)
    return reference_from(train, nodes=nodes, metrics={"mae": 4.0}), recent, nodes


@pytest.mark.parametrize(("table", "channel"), [("traffic", "speed"), ("demand", "count")])
def test_unshifted_recent_day_does_not_drift(city, table, channel):
    ref, recent, nodes = _split(city, table, channel)
    report = drift_report(ref, recent, nodes=nodes)
    assert not report.drifted, report
    assert report.scores[f"{channel}.psi"] < 0.1 and report.scores[f"{channel}.ks"] < 0.1


@pytest.mark.parametrize(("table", "channel", "factor"), [("traffic", "speed", 0.6), ("demand", "count", 2.0)])
def test_shifted_tail_drifts(city, table, channel, factor):
    hub = Hub({name: df.copy() for name, df in city.tables.items()}, city.meta)
    df = hub.tables[table]
    tail = df["ts"] >= recent_start(hub, table, "1d")
    df.loc[tail, channel] *= factor  # e.g. a road closure: every sensor 40 % slower on the last day
    ref, recent, nodes = _split(hub, table, channel)
    report = drift_report(ref, recent, nodes=nodes)
    assert report.drifted
    assert any(r.startswith(f"{channel}: psi") for r in report.reasons)
    assert any(r.startswith(f"{channel}: ks") for r in report.reasons)
    assert report.scores[f"{channel}.node_fraction"] > 0.25


def test_one_shifted_sensor_shows_in_the_node_fraction_only_when_enough_shift(city):
    ref, recent, nodes = _split(city, "traffic", "speed")
    values = recent["speed"].copy()
    values[:, 0] *= 0.3
    one = drift_report(ref, {"speed": values}, nodes=nodes)
    assert one.scores["speed.node_fraction"] == pytest.approx(1 / 8)
    assert not one.drifted  # 1 of 8 sensors is below node_fraction 0.25
    values[:, 1:3] *= 0.3
    assert drift_report(ref, {"speed": values}, nodes=nodes).drifted


def test_live_error_against_the_test_mae(city):
    ref, recent, nodes = _split(city, "traffic", "speed")
    assert not drift_report(ref, recent, live_error=5.0, nodes=nodes).drifted  # 1.25x
    report = drift_report(ref, recent, live_error=7.0, nodes=nodes)
    assert report.drifted and report.scores["error_ratio"] == pytest.approx(1.75)
    assert report.reasons == ["live MAE 7.000 is 1.75x the test MAE 4.000 (> 1.5x)"]


def test_too_few_recent_values_give_no_verdict(city):
    ref, recent, nodes = _split(city, "traffic", "speed")
    report = drift_report(ref, {"speed": recent["speed"][:2] * 0.1}, nodes=nodes, cfg=DriftConfig(min_samples=100))
    assert not report.drifted and "no verdict" in report.notes[0]
    with pytest.raises(ConfigError, match="name no channel"):
        drift_report(ref, {"flow": recent["speed"]})


def test_ks_matches_scipy_and_psi_is_zero_for_the_same_bins():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=20_000), rng.normal(0.3, 1.2, size=3000)
    ref = reference_from({"x": a})["channels"]["x"]
    assert ks_statistic(ref["quantiles"], b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=0.01)
    assert ks_statistic(ref["quantiles"], rng.normal(size=3000)) < 0.03
    counts = rng.poisson(0.5, size=5000).astype(float)  # ties: most values are 0 or 1
    ref_counts = reference_from({"c": counts})["channels"]["c"]
    assert ks_statistic(ref_counts["quantiles"], rng.poisson(0.5, size=3000).astype(float)) < 0.03
    assert psi(ref["fractions"], ref["fractions"]) == 0.0


def test_reference_round_trips_as_json(tmp_path, city):
    ref, recent, nodes = _split(city, "traffic", "speed")
    path = save_reference(ref, tmp_path / "drift_reference.json")
    again = load_reference(path)
    assert drift_report(again, recent, nodes=nodes).scores == drift_report(ref, recent, nodes=nodes).scores
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a drift reference"):
        load_reference(tmp_path / "bad.json")


def test_retrain_at_most_once_per_period(city):
    ref, recent, nodes = _split(city, "traffic", "speed")
    drifted = drift_report(ref, {"speed": recent["speed"] * 0.5}, nodes=nodes)
    calm = drift_report(ref, recent, nodes=nodes)
    now = datetime(2026, 3, 5, 3, 0, tzinfo=UTC)
    assert should_retrain(drifted, None, "1d", now=now)
    assert not should_retrain(drifted, now - timedelta(hours=23), "1d", now=now)
    assert should_retrain(drifted, now - timedelta(hours=24), timedelta(days=1), now=now)
    assert not should_retrain(calm, None, "1d", now=now)
    with pytest.raises(ConfigError, match="timezone-aware"):
        should_retrain(drifted, datetime(2026, 3, 4), "1d", now=now)
