"""QuantileBins: scikit-learn's weighted-quantile thresholds in one sort, codes that keep the partition."""

import numpy as np
import pytest
from sklearn.ensemble._hist_gradient_boosting.binning import _find_binning_thresholds

from cityagent.errors import ConfigError
from cityagent.models import build_model
from cityagent.models.classical.binning import QuantileBins
from tests.models.inputs import common_params
from tests.models.test_demand_cell_models import FRAMES, demand_data


def test_thresholds_are_the_ones_scikit_learn_computes():
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.gamma(2.0, size=3000), rng.integers(0, 7, 3000), np.round(rng.normal(size=3000), 1)])
    x[::50, 0] = np.nan  # missing values are left out of the quantiles
    w = 0.5 ** (np.arange(3000)[::-1] / 400)
    for weight in (None, w):
        bins = QuantileBins().fit(x, weight)
        for j in range(x.shape[1]):
            ours, theirs = bins.thresholds[j], _find_binning_thresholds(x[:, j], 255, weight)
            assert ours.shape == theirs.shape and np.allclose(ours, theirs), j


def test_codes_keep_each_value_on_its_side_of_every_threshold():
    x = np.arange(1000, dtype=np.float64)[:, None] ** 2
    bins = QuantileBins(max_bins=10).fit(x)
    t = bins.thresholds[0]
    probe = np.concatenate([t, t + 1e-6, [-1.0, 1e12, np.nan]])[:, None]
    codes = bins.codes(probe)[:, 0]
    assert np.array_equal(codes[: len(t)], np.arange(len(t)))  # a value on a threshold falls in the lower bin
    assert np.array_equal(codes[len(t) : 2 * len(t)], np.arange(1, len(t) + 1))
    assert codes[-3] == 0 and codes[-2] == len(t) and np.isnan(codes[-1])
    assert len(np.unique(bins.codes(x))) == 10


def test_skipped_columns_pass_through_and_bad_input_says_what_to_do():
    x = np.column_stack([np.linspace(0, 1, 500), np.arange(500) % 9])
    bins = QuantileBins(max_bins=4, skip=(1,)).fit(x)
    assert bins.thresholds[1] is None and np.array_equal(bins.codes(x)[:, 1], x[:, 1])
    with pytest.raises(ConfigError, match="not fitted"):
        QuantileBins().codes(x)
    with pytest.raises(ConfigError, match=r"shape \[rows, 2\]"):
        bins.codes(x[:, :1])
    with pytest.raises(ConfigError, match="weights"):
        QuantileBins().fit(x, np.full(500, -1.0))
    with pytest.raises(ConfigError, match="max_bins"):
        QuantileBins(max_bins=256)


def test_prebinned_weighted_fit_forecasts_like_scikit_learns_own_binning():
    x, y = demand_data(300, seed=7)
    xt, yt = demand_data(60, seed=8)
    params = common_params() | FRAMES | dict(n_threads=1, max_iter=60, base_frames=[3, 8, 11], halflife=50.0)
    ours = build_model("gbrt_demand", **params).fit(x, y)
    theirs = build_model("gbrt_demand", prebin=False, **params).fit(x, y)
    assert ours.bins is not None and theirs.bins is None
    p_ours, p_theirs = ours.predict(xt), theirs.predict(xt)
    err = np.sqrt(np.mean((p_theirs - yt) ** 2))
    assert np.sqrt(np.mean((p_ours - p_theirs) ** 2)) < 0.25 * err  # same model up to which rows set the bins
    assert abs(np.sqrt(np.mean((p_ours - yt) ** 2)) - err) < 0.1 * err


def test_a_model_saved_before_prebin_still_predicts():
    x, y = demand_data(100, seed=9)
    params = common_params() | FRAMES | dict(n_threads=1, max_iter=20, base_frames=[3, 8, 11])
    model = build_model("gbrt_demand", **params).fit(x, y)
    expected = model.predict(x[:5])
    del model.__dict__["bins"]  # what joblib restores from a bundle written before the option existed
    np.testing.assert_allclose(model.predict(x[:5]), expected)
