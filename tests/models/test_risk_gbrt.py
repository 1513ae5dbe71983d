"""risk_gbrt and its monotone calibration: shapes, that it ranks risky cells first, order-preserving calibration."""

import numpy as np
import pytest

from cityagent.errors import ConfigError
from cityagent.models import build_model, model_info
from cityagent.models.risk.calibration import MonotoneCalibrator
from cityagent.models.risk.risk_features import CellRates, Layout, hour_of_week, window_features

GRID, F, T_IN = (4, 4), 41, 7
N = GRID[0] * GRID[1]
FRAMES = np.array([0, 168, 336, 504, 669, 670, 671])  # 4 same-hour-previous-weeks + 3 recent hours, GSNet's window


def gsnet_windows(samples: int, seed: int, start: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GSNet-layout windows over a synthetic city: cell n has accidents with rate base[n], tripled at 17:00.

    Returns x [S, 7, N, 41], y [S, 1, N] and the per-cell true rate at each target [S, N].
    """
    rng = np.random.default_rng(seed)
    hours = start + np.arange(samples + 672)
    base = np.linspace(0.01, 0.3, N)
    rate = base[None] * np.where(hours % 24 == 17, 3.0, 1.0)[:, None]  # [T, N]
    series = np.zeros((len(hours), N, F), dtype=np.float32)
    series[..., 0] = rng.random(rate.shape) < rate
    series[np.arange(len(hours)), :, 1 + hours % 24] = 1  # one-hot hour of day
    series[np.arange(len(hours)), :, 25 + (hours // 24) % 7] = 1  # one-hot weekday
    series[..., 33] = rng.random((len(hours), 1))
    series[np.arange(len(hours)), :, 34 + hours % 5] = 1  # one-hot weather
    series[..., 39:41] = rng.random((len(hours), N, 2))
    idx = np.arange(samples)[:, None] + FRAMES[None]
    return series[idx], series[672 + np.arange(samples), :, 0][:, None], rate[672 + np.arange(samples)]


def params(**kw) -> dict:
    adjacency = np.ones((N, N)) - np.eye(N)
    base = dict(num_nodes=N, in_features=F, input_len=T_IN, horizon=1, grid=GRID, adjacency=adjacency)
    return base | dict(n_threads=1, max_iter=30, min_samples_leaf=20, cells=12) | kw


def test_features_read_the_target_hour_and_have_one_row_per_cell():
    x, y, _ = gsnet_windows(30, seed=0)
    how = hour_of_week(x, Layout())
    assert (how == np.arange(672, 702) % 168).all()  # hour 0 is a Monday 00:00 in the synthetic city
    feats = window_features(x, CellRates(how, y[:, 0]), Layout(), GRID, adjacency=np.eye(N))
    assert feats.shape[:2] == (30, N) and np.isfinite(feats).all()


def test_risk_gbrt_ranks_risky_cells_and_calibration_keeps_the_order():
    x, y, _ = gsnet_windows(600, seed=1)
    xt, _, rate = gsnet_windows(48, seed=2, start=600)
    model = build_model("risk_gbrt", **params()).fit(x, y)
    score, pred = model.score(xt), model.predict(xt)
    assert pred.shape == (48, 1, N)
    corr = np.corrcoef(score.ravel(), rate.ravel())[0, 1]
    assert corr > 0.7, corr  # the trees recover the per-cell, per-hour accident rate
    same = np.argsort(-score, axis=1, kind="stable") == np.argsort(-pred[:, 0], axis=1, kind="stable")
    assert same.all()  # a strictly increasing calibration changes no per-hour ranking
    assert 0.9 < np.median(pred) < 1.1  # the synthetic risk is 0/1: E[risk | risk > 0] = 1
    raw = build_model("risk_gbrt", **params(calibrate=False)).fit(x, y).predict(xt)
    assert np.allclose(raw[:, 0], score * 1.0)  # uncalibrated: P(risk > 0) × mean positive risk (= 1 here)


def test_halflife_follows_where_accidents_happen_lately():
    x, y, _ = gsnet_windows(600, seed=4)
    # the city's risky cells swap in the last 150 windows: cell n now has the risk of cell N - 1 - n
    x[450:, :, :, 0], y[450:] = x[450:, :, ::-1, 0], y[450:, :, ::-1]
    xt, _, rate = gsnet_windows(48, seed=5, start=600)
    xt[..., 0], rate = xt[:, :, ::-1, 0], rate[:, ::-1]

    def follows(**kw) -> float:
        score = build_model("risk_gbrt", **params(cells=N, calibrate=False, **kw)).fit(x, y).score(xt)
        return float(np.corrcoef(score.ravel(), rate.ravel())[0, 1])

    assert follows(halflife=50.0) > follows() + 0.05
    with pytest.raises(ConfigError, match="halflife"):
        build_model("risk_gbrt", **params(halflife=0))


def test_risk_gbrt_errors_say_what_to_do():
    x, y, _ = gsnet_windows(40, seed=3)
    with pytest.raises(ConfigError, match="call fit"):
        build_model("risk_gbrt", **params()).predict(x)
    with pytest.raises(ConfigError, match="next hour"):
        build_model("risk_gbrt", **params(horizon=3)).fit(x, y)
    with pytest.raises(ConfigError, match="grid"):
        build_model("risk_gbrt", **params(grid=None))
    with pytest.raises(ConfigError, match="41-channel"):
        build_model("risk_gbrt", **params(in_features=9)).fit(x, y)
    with pytest.raises(ConfigError, match="shape"):
        build_model("risk_gbrt", **params()).fit(x[:, :5], y)
    with pytest.raises(ConfigError, match="risk > 0"):
        build_model("risk_gbrt", **params()).fit(x, np.zeros_like(y))
    assert model_info("risk_gbrt").kind == "classical" and model_info("risk_gbrt").domain == "risk"


def test_calibrator_is_strictly_increasing_and_fits_conditional_means():
    rng = np.random.default_rng(0)
    score = rng.random(4000)
    target = np.where(score > 0.5, 2.0, 1.0) + rng.normal(0, 0.05, len(score))
    cal = MonotoneCalibrator(tie_slope=0.01).fit(score, target)
    grid = np.linspace(-0.5, 1.5, 1001)  # beyond the fitted range too
    assert (np.diff(cal(grid)) > 0).all()
    assert abs(cal(np.array(0.25)) - 1.0) < 0.05 and abs(cal(np.array(0.75)) - 2.0) < 0.05
    with pytest.raises(ConfigError, match="fitted"):
        MonotoneCalibrator()(score)
    with pytest.raises(ConfigError, match="tie_slope"):
        MonotoneCalibrator(tie_slope=0.0)
    with pytest.raises(ConfigError, match="pairs"):
        MonotoneCalibrator().fit(score[:1], target[:1])


@pytest.mark.parametrize("calibrate", [True, False])
def test_risk_gbrt_in_torch_forecasts_what_the_trees_and_calibration_do(calibrate):
    import torch

    from cityagent.models.risk.risk_module import WindowFeatures

    x, y, _ = gsnet_windows(400, seed=3)
    xt, _, _ = gsnet_windows(24, seed=4, start=400)
    model = build_model("risk_gbrt", **params(calibrate=calibrate)).fit(x, y)
    module = model.to_torch()
    features = WindowFeatures(model.rates, model.layout, model.grid, model.target_channel, model.adjacency)
    with torch.no_grad():
        got, feats = module(torch.as_tensor(xt)).numpy(), features(torch.as_tensor(xt, dtype=torch.float64)).numpy()
    want = window_features(xt.astype(np.float64), model.rates, model.layout, GRID, adjacency=model.adjacency)
    np.testing.assert_array_equal(feats, want)  # bit for bit: every split goes the same way
    np.testing.assert_allclose(got, model.predict(xt), rtol=1e-7, atol=1e-9)
    with pytest.raises(ConfigError, match="not been fitted"):
        build_model("risk_gbrt", **params()).to_torch()


def test_hour_balance_gives_every_hours_accidents_the_same_weight(monkeypatch):
    from sklearn.ensemble import HistGradientBoostingClassifier

    seen = []
    fit = HistGradientBoostingClassifier.fit

    def recording(self, x, y, sample_weight=None):
        seen.append((y, sample_weight))
        return fit(self, x, y, sample_weight=sample_weight)

    monkeypatch.setattr(HistGradientBoostingClassifier, "fit", recording)
    x, y, _ = gsnet_windows(300, seed=6)
    build_model("risk_gbrt", **params(cells=N, calibrate=False, hour_balance=True, halflife=100.0)).fit(x, y)
    label, weight = seen[-1]
    label, weight = label.reshape(300, N), weight.reshape(300, N)  # rows s * cells + cell
    recency = 0.5 ** (np.arange(300)[::-1] / 100.0)
    per_hour = (weight * label).sum(1) / recency  # each hour's positives together, recency taken out
    busy = label.sum(1) > 0
    assert np.allclose(per_hour[busy], per_hour[busy][0])  # one accident or five: the hour weighs the same
    assert np.isclose((weight / recency[:, None]).mean(), 1.0)  # the balance re-spreads weight, averaging 1
