"""A fitted scikit-learn histogram GBM as a torch module, so tree models export to ONNX like the deep ones.

Every tree's nodes are packed into flat tensors (a leaf points to itself), and all trees descend together, one
level per step, for the deepest tree's depth: gathers and comparisons only, which trace to plain ONNX ops. The
decisions are scikit-learn's own (``_predict_one_from_raw_data``): ``x <= threshold`` goes left on a numeric
split, NaN goes where the node sends missing values, and a categorical split sends a category left when it is in
the node's left set, right when it is another category seen in training, and where missing values go otherwise.
As in scikit-learn, categorical columns are first encoded to their index among the training categories (unknown:
NaN) and moved in front of the numeric ones.
Comparisons run in float64, as scikit-learn's do, so an input on a threshold takes the same side.
"""

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from torch import nn

from cityagent.errors import ConfigError

CATEGORIES = 256  # a categorical feature's values are bytes in scikit-learn's bitsets


def _bits(bitset: np.ndarray) -> np.ndarray:
    """A (8,) uint32 bitset → (256,) bool membership."""
    return ((bitset[np.arange(CATEGORIES) // 32] >> (np.arange(CATEGORIES) % 32)) & 1).astype(bool)


class TreeEnsemble(nn.Module):
    """``forward(x [R, K]) -> [R]``: the raw prediction of a fitted ``HistGradientBoostingRegressor`` (or the
    probability of the positive class of a binary ``HistGradientBoostingClassifier``)."""

    def __init__(self, estimator: HistGradientBoostingRegressor | HistGradientBoostingClassifier) -> None:
        super().__init__()
        predictors = getattr(estimator, "_predictors", None)
        if predictors is None:
            raise ConfigError("the tree ensemble is not fitted; fit the model before exporting it.")
        if any(len(per_iter) != 1 for per_iter in predictors):
            raise ConfigError("only regressors and binary classifiers export (one tree per boosting iteration).")
        self.proba = isinstance(estimator, HistGradientBoostingClassifier)
        self._encoder(estimator)
        known = getattr(estimator._bin_mapper, "known_categories", None) or []
        known_bits = {f: np.isin(np.arange(CATEGORIES), c) for f, c in enumerate(known) if c is not None}
        feature, threshold, left, right, missing_left, value, cat_row = [], [], [], [], [], [], []
        tables = [np.zeros(CATEGORIES, dtype=bool)]  # row 0: numeric nodes never read it
        roots, depth, offset = [], 0, 0
        for (tree,) in predictors:
            nodes = tree.nodes
            roots.append(offset)
            depth = max(depth, int(nodes["depth"].max()))
            leaf = nodes["is_leaf"].astype(bool)
            own = np.arange(len(nodes)) + offset
            left.append(np.where(leaf, own, nodes["left"].astype(np.int64) + offset))
            right.append(np.where(leaf, own, nodes["right"].astype(np.int64) + offset))
            feature.append(np.where(leaf, 0, nodes["feature_idx"]))
            threshold.append(nodes["num_threshold"])
            missing_left.append(nodes["missing_go_to_left"].astype(bool))
            value.append(np.where(leaf, nodes["value"], 0.0))
            rows = np.zeros(len(nodes), dtype=np.int64)
            for i in np.flatnonzero(nodes["is_categorical"].astype(bool) & ~leaf):
                go_left = _bits(tree.raw_left_cat_bitsets[nodes["bitset_idx"][i]])
                seen = known_bits.get(int(nodes["feature_idx"][i]), np.ones(CATEGORIES, dtype=bool))
                rows[i] = len(tables)
                tables.append(go_left | (~seen & bool(nodes["missing_go_to_left"][i])))  # unknown: as missing
            cat_row.append(rows)
            offset += len(nodes)
        self.depth = depth
        for name, arr, dtype in (
            ("feature", feature, torch.int64),
            ("threshold", threshold, torch.float64),
            ("left", left, torch.int64),
            ("right", right, torch.int64),
            ("missing_left", missing_left, torch.uint8),
            ("value", value, torch.float64),
            ("cat_row", cat_row, torch.int64),
        ):
            self.register_buffer(name, torch.as_tensor(np.concatenate(arr), dtype=dtype))
        self.register_buffer("roots", torch.as_tensor(roots, dtype=torch.int64))
        self.register_buffer("cat_left", torch.as_tensor(np.concatenate(tables), dtype=torch.uint8))  # flat, 0/1
        self.register_buffer("baseline", torch.as_tensor(float(np.ravel(estimator._baseline_prediction)[0])))

    def _encoder(self, estimator: HistGradientBoostingRegressor | HistGradientBoostingClassifier) -> None:
        """scikit-learn's ``_preprocessor``: categorical columns ordinal-encoded and placed first."""
        pre = getattr(estimator, "_preprocessor", None)
        self.n_cat = 0
        if pre is None:
            return
        is_cat = np.asarray(estimator.is_categorical_, dtype=bool)
        cats = [np.asarray(c, dtype=np.float64) for c in pre.named_transformers_["encoder"].categories_]
        cats = [c[~np.isnan(c)] for c in cats]  # a missing value stays NaN, as the encoder leaves it
        table = np.full((len(cats), max(len(c) for c in cats)), np.nan)  # NaN padding never matches
        for i, c in enumerate(cats):
            table[i, : len(c)] = c
        self.n_cat = len(cats)
        self.register_buffer("order", torch.as_tensor(np.r_[np.flatnonzero(is_cat), np.flatnonzero(~is_cat)]))
        self.register_buffer("categories", torch.as_tensor(table))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features ``[R, K]`` (float64) → the columns the trees split on."""
        if not self.n_cat:
            return x
        x = x[:, self.order]
        match = x[:, : self.n_cat].unsqueeze(-1) == self.categories  # [R, C, L]
        index = match.to(torch.float64).argmax(-1).to(torch.float64)
        encoded = torch.where(match.any(-1), index, torch.full_like(index, float("nan")))
        return torch.cat([encoded, x[:, self.n_cat :]], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.encode(x.to(torch.float64))
        node = self.roots.unsqueeze(0).expand(x.shape[0], -1)  # [R, trees]
        for _ in range(self.depth):
            v = torch.gather(x, 1, self.feature[node])
            nan = torch.isnan(v)
            row = self.cat_row[node]
            is_cat = row > 0
            category = torch.where(nan, torch.zeros_like(v), v).clamp(0, CATEGORIES - 1).to(torch.int64)
            cat_left = self.cat_left[row * CATEGORIES + category]
            missing = nan | (is_cat & (v < 0))
            numeric_left = (v <= self.threshold[node]).to(torch.uint8)  # uint8: ONNX Runtime has no bool Where
            go_left = torch.where(missing, self.missing_left[node], torch.where(is_cat, cat_left, numeric_left))
            node = torch.where(go_left > 0, self.left[node], self.right[node])
        raw = self.value[node].sum(1) + self.baseline
        return torch.sigmoid(raw) if self.proba else raw
