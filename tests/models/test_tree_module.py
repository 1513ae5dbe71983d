"""TreeEnsemble: scikit-learn's fitted histogram GBMs, descended in torch and as ONNX's TreeEnsemble node, decide
every split as scikit-learn does."""

import numpy as np
import onnx
import pytest
import torch
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from cityagent.errors import ConfigError
from cityagent.models.classical.tree_module import ML_DOMAIN, TreeEnsemble
from cityagent.training.onnx_export import to_onnx
from cityagent.training.parity import ort_session


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


def onnx_forecast(trees: TreeEnsemble, xt: np.ndarray, path) -> np.ndarray:
    proto = to_onnx(trees, torch.from_numpy(xt[:2]))
    assert [n.op_type for n in proto.graph.node if n.domain == ML_DOMAIN] == (["TreeEnsemble"] if trees.ml else [])
    # the ML domain is declared exactly when a node uses it (the exporter warns of an unused one)
    assert (ML_DOMAIN in {o.domain for o in proto.opset_import}) == (trees.ml is not None)
    onnx.save(proto, path)
    return ort_session(str(path)).run(None, {"x": xt})[0]


@pytest.mark.parametrize("model", ["regressor", "classifier"])
def test_onnx_tree_ensemble_node_takes_every_split_as_scikit_learn(model, tmp_path):
    x, y = data(5000, 5)
    cat = [False, False, True, False]
    if model == "regressor":
        est = HistGradientBoostingRegressor(max_iter=60, categorical_features=cat).fit(x, y)
        predict = est.predict
    else:
        est = HistGradientBoostingClassifier(max_iter=40, categorical_features=cat).fit(x, y > 1)
        predict = lambda v: est.predict_proba(v)[:, 1]  # noqa: E731
    trees = TreeEnsemble(est)
    xt = probes(trees, 6)  # NaNs, unknown categories, values exactly on thresholds
    np.testing.assert_allclose(onnx_forecast(trees, xt, tmp_path / "t.onnx"), predict(xt), rtol=0, atol=1e-9)


def test_single_leaf_trees_export_as_their_constant(tmp_path):
    x, _ = data(400, 7)
    flat = HistGradientBoostingRegressor(max_iter=5).fit(x, np.full(len(x), 3.25))  # nothing to split on
    trees = TreeEnsemble(flat)
    assert trees.ml is None
    xt = probes(trees, 8)
    np.testing.assert_allclose(onnx_forecast(trees, xt, tmp_path / "flat.onnx"), flat.predict(xt), atol=1e-12)


def test_what_cannot_be_translated_says_so():
    with pytest.raises(ConfigError, match="not fitted"):
        TreeEnsemble(HistGradientBoostingRegressor())
    x, y = data(600, 4)
    multi = HistGradientBoostingClassifier(max_iter=3).fit(x, np.digitize(y, [0, 1]))  # 3 classes
    with pytest.raises(ConfigError, match="binary classifiers"):
        TreeEnsemble(multi)
