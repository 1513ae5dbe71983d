"""TreeEnsemble: scikit-learn's fitted histogram GBMs, descended in torch, decide every split as scikit-learn does."""

import numpy as np
import pytest
import torch
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from cityagent.errors import ConfigError
from cityagent.models.classical.tree_module import TreeEnsemble


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A numeric column with NaNs, a numeric one, a categorical one (codes 1.5 apart, some NaN), a numeric one."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    x[:, 2] = rng.integers(0, 20, n) * 1.5
    x[::10, 0], x[::13, 2] = np.nan, np.nan
    y = x[:, 1] + np.nan_to_num(x[:, 0], nan=2.0) + 2 * np.isin(x[:, 2], [3.0, 7.5, 12.0]) + 0.1 * rng.normal(size=n)
    return x, y


def probes(model: TreeEnsemble, seed: int) -> np.ndarray:
    """Fresh rows: NaNs, categories never seen (negative, between codes, too large), and values on thresholds."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3000, 4))
    x[:, 2] = rng.integers(-2, 25, 3000) * 1.5
    x[::7, 0], x[::11, 2], x[::17, 2] = np.nan, np.nan, 4.0
    numeric = (model.cat_row == 0) & (model.left != model.right)
    for i, (f, t) in enumerate(zip(model.feature[numeric].tolist(), model.threshold[numeric].tolist(), strict=True)):
        x[i % len(x), model.order[f] if model.n_cat else f] = t  # exactly on a split: goes left
    return x


# scikit-learn sums the leaves in its baseline's precision; a split decided the other way would cost a leaf value
def test_regressor_matches_scikit_learn_on_missing_unknown_and_threshold_values():
    x, y = data(5000, 0)
    est = HistGradientBoostingRegressor(max_iter=60, categorical_features=[False, False, True, False]).fit(x, y)
    trees = TreeEnsemble(est)
    xt = probes(trees, 1)
    assert trees.depth >= 3 and trees.n_cat == 1
    np.testing.assert_allclose(trees(torch.from_numpy(xt)).numpy(), est.predict(xt), rtol=0, atol=1e-6)
    plain = HistGradientBoostingRegressor(max_iter=30).fit(x, y)  # no categorical column: no encoding step
    np.testing.assert_allclose(TreeEnsemble(plain)(torch.from_numpy(xt)).numpy(), plain.predict(xt), atol=1e-6)


def test_binary_classifier_gives_the_positive_probability():
    x, y = data(5000, 2)
    est = HistGradientBoostingClassifier(max_iter=40, categorical_features=[False, False, True, False]).fit(x, y > 1)
    trees = TreeEnsemble(est)
    xt = probes(trees, 3)
    np.testing.assert_allclose(trees(torch.from_numpy(xt)).numpy(), est.predict_proba(xt)[:, 1], atol=1e-6)


def test_what_cannot_be_translated_says_so():
    with pytest.raises(ConfigError, match="not fitted"):
        TreeEnsemble(HistGradientBoostingRegressor())
    x, y = data(600, 4)
    multi = HistGradientBoostingClassifier(max_iter=3).fit(x, np.digitize(y, [0, 1]))  # 3 classes
    with pytest.raises(ConfigError, match="binary classifiers"):
        TreeEnsemble(multi)
