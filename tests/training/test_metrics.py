"""Metrics against hand-computed examples and against the HA check numbers of shared/data/risk/SOURCES.md."""

import numpy as np
import pytest

from cityagent.training.metrics import (
    masked_mae,
    masked_mape,
    masked_rmse,
    median_level,
    per_horizon,
    quantile_metrics,
    tgcn_metrics,
)
from cityagent.training.risk_metrics import gsnet_metrics, gsnet_rmse, map_at_k, recall_at_k


def test_masked_point_metrics_by_hand():
    y = np.array([1.0, 2.0, 4.0, 0.0]).reshape(1, 1, 4)
    pred = np.array([2.0, 2.0, 0.0, 3.0]).reshape(1, 1, 4)
    mask = np.array([True, True, False, True]).reshape(1, 1, 4)
    assert masked_mae(y, pred, mask) == pytest.approx((1 + 0 + 3) / 3)
    assert masked_rmse(y, pred, mask) == pytest.approx(np.sqrt((1 + 0 + 9) / 3))
    assert masked_mape(y, pred, mask) == pytest.approx((1 / 1 + 0) / 2 * 100)  # the zero target is left out
    assert np.isnan(masked_mae(y, pred, np.zeros_like(mask)))


def test_mape_leaves_out_zeros_that_went_through_float_rounding():
    # SZ-taxi's CSV holds speeds of 2.4e-17: dividing by them made MAPE ~3e15 %
    y = np.array([50.0, 2.37e-17, 25.0, 0.0]).reshape(1, 1, 4)
    pred = np.array([45.0, 3.0, 30.0, 1.0]).reshape(1, 1, 4)
    assert masked_mape(y, pred) == pytest.approx((0.1 + 0.2) / 2 * 100)
    assert masked_mape(y * 1e-12, pred * 1e-12) == pytest.approx((0.1 + 0.2) / 2 * 100)  # relative, not absolute
    assert np.isnan(masked_mape(np.zeros((1, 1, 3)), np.ones((1, 1, 3))))


def test_per_horizon_rows():
    y = np.zeros((2, 3, 1))
    pred = np.arange(3, dtype=float)[None, :, None].repeat(2, axis=0)  # error h at step h
    rows = per_horizon(y, pred)
    assert [r["horizon"] for r in rows] == [1, 2, 3]
    assert [r["mae"] for r in rows] == [0.0, 1.0, 2.0]


def test_tgcn_metrics_by_hand():
    y = np.array([1.0, 2.0, 3.0, 4.0]).reshape(2, 1, 2)
    pred = np.array([1.0, 2.0, 3.0, 5.0]).reshape(2, 1, 2)
    m = tgcn_metrics(y, pred)
    assert m["rmse"] == pytest.approx(0.5)
    assert m["mae"] == pytest.approx(0.25)
    assert m["accuracy"] == pytest.approx(1 - 1 / np.sqrt(30))
    assert m["r2"] == pytest.approx(1 - 1 / 5)
    assert m["var"] == pytest.approx(1 - 0.1875 / 1.25)


def test_quantile_metrics_by_hand():
    y = np.ones((1, 1, 1))
    pred = np.array([0.5, 2.0]).reshape(1, 1, 1, 2)
    m = quantile_metrics(y, pred, (0.1, 0.9))
    assert m["pinball"] == pytest.approx((0.1 * 0.5 + 0.1 * 1.0) / 2)
    assert m["coverage"] == 100.0
    assert median_level((0.1, 0.5, 0.9)) == 1


def test_gsnet_metrics_by_hand():
    region = np.array([True, True, True, False])
    y = np.array([[2.0, 0.0, 1.0, 5.0], [0.0, 0.0, 0.0, 3.0]]).reshape(2, 1, 4)
    pred = np.array([[0.5, 1.0, 0.2, 9.0], [1.0, 0.0, 0.0, 0.0]]).reshape(2, 1, 4)
    # m = region & (y > 0) has 2 of 8 entries → weight 4 there: sqrt(((1.5*4)² + (0.8*4)²) / 8)
    assert gsnet_rmse(y, pred, region) == pytest.approx(np.sqrt((36 + 10.24) / 8))
    # sample 0: K=2, truth {0, 2}, predicted top-2 [1, 0] → 1 hit; sample 1: K=0 (risk only outside the region)
    assert recall_at_k(y, pred, region) == pytest.approx(50.0)
    # AP(sample 0) = (1/2) / 2; the hour without risk scores 0 and still counts
    assert map_at_k(y, pred, region) == pytest.approx(0.125)


def test_gsnet_ranking_ties_keep_lower_cells_first():
    region = np.ones(3, dtype=bool)
    y = np.array([1.0, 1.0, 0.0]).reshape(1, 1, 3)
    assert recall_at_k(y, np.zeros((1, 1, 3)), region) == 100.0  # ties → cells 0, 1, like a stable sort
    assert recall_at_k(y, np.array([0.0, 0.0, 1.0]).reshape(1, 1, 3), region) == 50.0
    assert map_at_k(y, np.array([0.0, 0.0, 1.0]).reshape(1, 1, 3), region) == pytest.approx(0.25)


def test_gsnet_rush_hour_rows():
    region = np.ones(2, dtype=bool)
    y = np.array([[1.0, 0.0], [0.0, 2.0]]).reshape(2, 1, 2)
    pred = np.array([[1.0, 0.0], [2.0, 0.0]]).reshape(2, 1, 2)
    m = gsnet_metrics(y, pred, region, hours=np.array([7, 12]))
    assert m["rush_recall"] == 100.0 and m["recall"] == 50.0
    assert "rush_map" in m and "rush_gsnet_rmse" in m


def test_gsnet_metrics_reproduce_sources_ha_check(shared_data):
    """SOURCES.md: HA predictors on Chicago give 12.96/10.18 RMSE, 15.68/19.07 Recall, 0.0615/0.0776 MAP."""
    path = shared_data / "risk" / "gsnet_chicago" / "chicago_20x20_derived.npz"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    with np.load(path) as z:
        risk = z["all_data"][:, 0].reshape(-1, 400).astype(np.float64)  # [T, N] hourly from Monday 00:00
        region = z["risk_mask"].reshape(-1) != 0
    t = len(risk)
    start, end = int(t * 0.8), t  # test part; windows reach 4 weeks back inside it
    anchors = np.arange(start + 671, end - 1)  # inputs t-671..t, target t+1
    y = risk[anchors + 1][:, None, :]  # [S, 1, N]
    weeks = np.stack([risk[anchors + 1 - 168 * k] for k in (1, 2, 3, 4)])
    hours = (anchors + 1) % 24
    m = gsnet_metrics(y, weeks.mean(axis=0)[:, None, :], region, hours)
    assert len(anchors) == 495 and int(np.isin(hours, [6, 7, 8, 15, 16, 17, 18]).sum()) == 144
    assert (round(m["gsnet_rmse"], 2), round(m["rush_gsnet_rmse"], 2)) == (12.96, 10.18)
    assert (round(m["recall"], 2), round(m["rush_recall"], 2)) == (15.68, 19.07)
    assert (round(m["map"], 4), round(m["rush_map"], 4)) == (0.0615, 0.0776)
    train = risk[: int(t * 0.6)]
    how = np.arange(len(train)) % 168
    mean_how = np.stack([train[how == h].mean(axis=0) for h in range(168)])  # [168, N]
    m2 = gsnet_metrics(y, mean_how[(anchors + 1) % 168][:, None, :], region, hours)
    assert (round(m2["gsnet_rmse"], 2), round(m2["rush_gsnet_rmse"], 2)) == (13.12, 10.35)
    assert (round(m2["recall"], 2), round(m2["rush_recall"], 2)) == (18.90, 21.12)
    assert (round(m2["map"], 4), round(m2["rush_map"], 4)) == (0.0822, 0.1098)
