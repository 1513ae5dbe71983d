"""What `cityagent train | tune | evaluate` print of a run's metrics: headline numbers and a few lead times, and where
the rest are; never one line per horizon metric."""

import pytest

from cityagent.agent.cli_metrics import pick_horizons, print_metrics, print_run_metrics, run_facts, split_metrics
from cityagent.training.bundle import ModelBundle

RUN = "0123456789abcdef0123456789abcdef"


def traffic_metrics(horizon: int = 12) -> dict[str, float]:
    out = {"test_mae": 4.0117, "test_rmse": 5.2311, "test_mape": 7.2635}
    for h in range(1, horizon + 1):
        out |= {f"test_mae_h{h}": 3.0 + h / 10, f"test_rmse_h{h}": 4.0 + h / 10, f"test_mape_h{h}": 6.0 + h / 10}
    return out


def printed(capsys) -> str:
    return " ".join(capsys.readouterr().out.split())  # compare words, not the table's spacing


def test_a_run_prints_the_headline_and_three_lead_times_then_where_every_horizon_is(tmp_path, capsys):
    meta = {"step": "5min", "target_offsets": list(range(1, 13)), "units": "km/h"}
    bundle = ModelBundle("stid", {}, {}, {}, {}, meta).save(tmp_path / "model.pt")
    print_run_metrics(traffic_metrics(), RUN, str(bundle))
    out = printed(capsys)
    assert "test MAE RMSE MAPE %" in out
    assert "15 min (h3) 3.300 4.300 6.300" in out and "30 min (h6)" in out and "1 h (h12)" in out
    assert "all 12 steps 4.012 5.231 7.26" in out and "MAE and RMSE in km/h" in out
    assert "h7" not in out and "mae_h" not in out and "test_mae" not in out
    assert f"MLflow run {RUN}" in out and "metrics/per_horizon.csv" in out and f"`cityagent evaluate {RUN}`" in out


def test_without_the_bundle_the_rows_name_horizon_steps(capsys):
    print_run_metrics(traffic_metrics(), RUN, bundle_path="s3://team/artifacts/bundle/model.pt")
    out = printed(capsys)
    assert "h1 3.100" in out and "h6 3.600" in out and "h12 4.200" in out and "h7" not in out


def test_evaluate_prints_every_horizon_step(capsys):
    print_metrics(traffic_metrics(), every_horizon=True)
    out = printed(capsys)
    assert all(f"h{h} " in out for h in range(1, 13)) and "all 12 steps" in out
    assert "mae_h" not in out


def test_risk_prints_its_ranking_metrics_over_all_and_rush_hours(capsys):
    metrics = {"test_mae": 0.21, "test_rmse": 0.45, "test_mape": float("nan")}
    metrics |= {"test_mae_h1": 0.21, "test_rmse_h1": 0.45, "test_mape_h1": float("nan")}
    metrics |= {"test_gsnet_rmse": 0.12, "test_recall": 34.5, "test_map": 0.21}
    metrics |= {"test_rush_gsnet_rmse": 0.15, "test_rush_recall": 30.1, "test_rush_map": 0.19}
    print_run_metrics(metrics, RUN)
    out = printed(capsys)
    assert "all 0.2100 0.4500 –" in out  # one horizon step: no per-step rows, no pointer to them
    assert "ranking GSNet RMSE Recall@K % MAP@K" in out
    assert "all hours 0.1200 34.50 0.2100" in out and "rush hours 0.1500 30.10 0.1900" in out
    assert "also" not in out and "h1" not in out and "cityagent evaluate" not in out


def test_other_headline_metrics_share_one_line(capsys):
    metrics = traffic_metrics(3) | {"test_tgcn_accuracy": 0.8712, "test_tgcn_r2": 0.61, "test_coverage": 81.0}
    print_metrics(metrics)
    out = printed(capsys)
    assert "h1" in out and "h2" in out and "h3" in out  # three steps: all of them
    assert "also: coverage 81 % · T-GCN accuracy 0.8712 · T-GCN R² 0.61" in out


def test_split_and_pick():
    headline, per_h = split_metrics(traffic_metrics())
    assert headline == {"mae": 4.0117, "rmse": 5.2311, "mape": 7.2635} and list(per_h) == list(range(1, 13))
    quarter_hours = {h: 15.0 * h for h in range(1, 5)}
    assert pick_horizons([1, 2, 3, 4], quarter_hours) == [1, 2, 4]  # 15, 30 and 60 min
    hourly = {h: 60.0 * h for h in range(1, 13)}
    assert pick_horizons(list(range(1, 13)), hourly) == [1, 6, 12]  # only 60 min matches: first, middle, last
    assert pick_horizons([1], {1: 5.0}) == []


@pytest.mark.parametrize("path", [None, "missing/model.pt"])
def test_run_facts_of_no_bundle_are_empty(path):
    assert run_facts(path) == ({}, None)


def test_run_facts_of_a_bundle_in_a_remote_store_are_fetched(tmp_path):
    from tests.training.export_factories import tiny_bundle

    path = tiny_bundle("gru").save(tmp_path / "model.pt")  # 5-minute steps, km/h
    leads, units = run_facts(path.as_uri())  # as an artifact URI, not a local path
    assert units == "km/h" and leads[1] == 5.0
