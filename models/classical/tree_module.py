"""A fitted scikit-learn histogram GBM as a torch module, so tree models export to ONNX like the deep ones.

Every tree's nodes are packed into flat tensors (a leaf points to itself), and all trees descend together, one
level per step, for the deepest tree's depth: gathers and comparisons only, which trace to plain ONNX ops. The
decisions are scikit-learn's own (``_predict_one_from_raw_data``): ``x <= threshold`` goes left on a numeric
split, NaN goes where the node sends missing values, and a categorical split sends a category left when it is in
the node's left set, right when it is another category seen in training, and where missing values go otherwise.
As in scikit-learn, categorical columns are first encoded to their index among the training categories (unknown:
NaN) and moved in front of the numeric ones.
Comparisons run in float64, as scikit-learn's do, so an input on a threshold takes the same side.

That descent is what the module computes in torch. In an ONNX export the trees become one ``ai.onnx.ml``
``TreeEnsemble`` node (opset 5) instead, with the same splits in float64 (``BRANCH_LEQ``, ``BRANCH_MEMBER`` for
categories, missing values tracked per node): ONNX Runtime's native tree kernel walks each tree only as deep as
the row's own path, ~7x faster than the traced descent, and the export's parity check compares the two.
"""

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from torch import nn

from cityagent.errors import ConfigError

CATEGORIES = 256  # a categorical feature's values are bytes in scikit-learn's bitsets
ML_DOMAIN, ML_OPSET = "ai.onnx.ml", 5  # TreeEnsemble with float64 splits and set membership
BRANCH_LEQ, BRANCH_MEMBER = 0, 6  # TreeEnsemble's nodes_modes


def _bits(bitset: np.ndarray) -> np.ndarray:
    """A (8,) uint32 bitset → (256,) bool membership."""
    return ((bitset[np.arange(CATEGORIES) // 32] >> (np.arange(CATEGORIES) % 32)) & 1).astype(bool)


class TreeEnsemble(nn.Module):
    """``forward(x [R, K]) -> [R]``: the prediction of a fitted ``HistGradientBoostingRegressor`` (through the
    inverse link of its loss: exp for ``poisson`` and ``gamma``) or the probability of the positive class of a
    binary ``HistGradientBoostingClassifier``."""

    def __init__(self, estimator: HistGradientBoostingRegressor | HistGradientBoostingClassifier) -> None:
        super().__init__()
        predictors = getattr(estimator, "_predictors", None)
        if predictors is None:
            raise ConfigError("the tree ensemble is not fitted; fit the model before exporting it.")
        if any(len(per_iter) != 1 for per_iter in predictors):
            raise ConfigError("only regressors and binary classifiers export (one tree per boosting iteration).")
        self.proba = isinstance(estimator, HistGradientBoostingClassifier)
        self.log_link = not self.proba and getattr(estimator, "loss", None) in ("poisson", "gamma")
        self._encoder(estimator)
        known = getattr(estimator._bin_mapper, "known_categories", None) or []
        known_bits = {f: np.isin(np.arange(CATEGORIES), c) for f, c in enumerate(known) if c is not None}
        feature, threshold, left, right, missing_left, value, cat_row = [], [], [], [], [], [], []
        tables = [np.zeros(CATEGORIES, dtype=bool)]  # row 0: numeric nodes never read it
        roots, depth, offset = [], 0, 0
        ml = _MLNodes()
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
            ml.add(nodes, {int(i): tables[r] for i, r in enumerate(rows) if r})
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
        self.register_buffer(
            "baseline", torch.tensor(float(np.ravel(estimator._baseline_prediction)[0]), dtype=torch.float64)
        )
        self.ml = ml if ml.featureids else None  # trees that are all single leaves: the descent is a constant

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
        exporting = self.ml is not None and torch.onnx.is_in_onnx_export()
        raw = (_TreeEnsembleOp.apply(x, self.ml) if exporting else self.descend(x)) + self.baseline
        if self.proba:
            return torch.sigmoid(raw)
        return torch.exp(raw) if self.log_link else raw

    def descend(self, x: torch.Tensor) -> torch.Tensor:
        """The trees' summed leaf values ``[R]`` of encoded features ``[R, K]``, all trees a level per step."""
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
        return self.value[node].sum(1)


class _MLNodes:
    """The ``TreeEnsemble`` attributes of the trees added so far: inner nodes numbered across trees, leaves apart;
    a tree that is a single leaf only adds its value to ``constant``."""

    def __init__(self) -> None:
        self.featureids: list[int] = []
        self.modes: list[int] = []
        self.splits: list[float] = []
        self.true_ids: list[int] = []
        self.true_leaf: list[int] = []
        self.false_ids: list[int] = []
        self.false_leaf: list[int] = []
        self.missing_true: list[int] = []
        self.members: list[float] = []
        self.weights: list[float] = []
        self.roots: list[int] = []
        self.constant = 0.0

    def add(self, nodes: np.ndarray, go_left: dict[int, np.ndarray]) -> None:
        """One tree: scikit-learn's node array and, per categorical node, the categories that go left."""
        leaf = nodes["is_leaf"].astype(bool)
        if leaf[0]:
            self.constant += float(nodes["value"][0])
            return
        inner, leaves = np.flatnonzero(~leaf), np.flatnonzero(leaf)
        index = np.zeros(len(nodes), dtype=np.int64)
        index[inner] = len(self.featureids) + np.arange(len(inner))
        index[leaves] = len(self.weights) + np.arange(len(leaves))
        self.roots.append(int(index[0]))
        for i in inner:
            self.featureids.append(int(nodes["feature_idx"][i]))
            self.missing_true.append(int(nodes["missing_go_to_left"][i]))  # "true" is left, as x <= threshold
            if i in go_left:
                self.modes.append(BRANCH_MEMBER)
                self.splits.append(float("nan"))
                self.members += [*np.flatnonzero(go_left[i]).astype(float), float("nan")]  # NaN ends a node's set
            else:
                self.modes.append(BRANCH_LEQ)
                self.splits.append(float(nodes["num_threshold"][i]))
            for child, ids, is_leaf in (
                (nodes["left"][i], self.true_ids, self.true_leaf),
                (nodes["right"][i], self.false_ids, self.false_leaf),
            ):
                ids.append(int(index[child]))
                is_leaf.append(int(leaf[child]))
        self.weights += [float(v) for v in nodes["value"][leaves]]

    def attributes(self) -> dict[str, object]:
        """Keyword attributes for ``g.op`` (suffix: ``_i`` ints, ``_t`` tensor)."""
        f64 = torch.float64
        attrs: dict[str, object] = {
            "aggregate_function_i": 1,  # SUM
            "n_targets_i": 1,
            "tree_roots_i": self.roots,
            "nodes_featureids_i": self.featureids,
            "nodes_modes_t": torch.tensor(self.modes, dtype=torch.uint8),
            "nodes_splits_t": torch.tensor(self.splits, dtype=f64),
            "nodes_truenodeids_i": self.true_ids,
            "nodes_trueleafs_i": self.true_leaf,
            "nodes_falsenodeids_i": self.false_ids,
            "nodes_falseleafs_i": self.false_leaf,
            "nodes_missing_value_tracks_true_i": self.missing_true,
            "leaf_targetids_i": [0] * len(self.weights),
            "leaf_weights_t": torch.tensor(self.weights, dtype=f64),
        }
        if self.members:
            attrs["membership_values_t"] = torch.tensor(self.members, dtype=f64)
        return attrs


class _TreeEnsembleOp(torch.autograd.Function):
    """The trees' sum ``[R]`` as one ``ai.onnx.ml`` ``TreeEnsemble`` node (plus the single-leaf trees' constant).

    Only for tracing: the tracer records ``symbolic``, and its forward merely shapes the traced output (the
    tracer cannot follow module buffers read inside a Function); the eager module computes ``descend``, and the
    export's parity check runs both."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor, nodes: "_MLNodes") -> torch.Tensor:
        return x.new_zeros(x.shape[0])

    @staticmethod
    def symbolic(g: torch.Graph, x: torch.Value, nodes: _MLNodes) -> torch.Value:
        out = g.op(f"{ML_DOMAIN}::TreeEnsemble", x, **nodes.attributes())
        out.setType(x.type().with_sizes([None, 1]))
        flat = g.op("Reshape", out, g.op("Constant", value_t=torch.tensor([-1])))
        return g.op("Add", flat, g.op("Constant", value_t=torch.tensor(nodes.constant, dtype=torch.float64)))
