"""GBRT: gradient-boosted regression trees on lag and calendar features (Friedman 2001; scikit-learn's
histogram GBM, after LightGBM, Ke et al. NeurIPS 2017). A strong non-deep baseline for all domains."""

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits
from torch import nn

from cityagent.errors import ConfigError
from cityagent.models.classical.tree_module import TreeEnsemble
from cityagent.models.registry import register


@register("gbrt", domain="any", kind="classical")
class GBRTForecaster:
    """One HistGradientBoostingRegressor per horizon step (and quantile level), shared by all nodes.

    Features of sample s, node n: the target channel's last ``lags`` values, the other channels of the
    last input step (calendar, exogenous values) and the node index (categorical when N ≤ 255, the
    histogram GBM's limit; numeric above). Arrays are numpy, in the scaled space of the deep models.

    Args:
        num_nodes: N.
        in_features: F.
        input_len: T_in.
        horizon: H, one estimator per step.
        target_channel: the channel to forecast and lag.
        quantiles: levels; each gets its own quantile-loss estimators and outputs are sorted per level.
        lags: how many of the last target values to use (default all T_in).
        max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization: boosting settings.
        random_state: seed for the estimators' early-stopping split.
        n_threads: OpenMP threads for fit/predict (None = all cores); 1 avoids spin-wait stalls when
            the cores are shared (Ray workers, CI).
    """

    def __init__(
        self,
        num_nodes: int,
        in_features: int,
        input_len: int,
        horizon: int,
        target_channel: int = 0,
        quantiles: tuple[float, ...] | None = None,
        lags: int | None = None,
        max_iter: int = 200,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        min_samples_leaf: int = 20,
        l2_regularization: float = 0.0,
        random_state: int = 0,
        n_threads: int | None = None,
    ) -> None:
        if lags is not None and not 1 <= lags <= input_len:
            raise ConfigError(f"gbrt lags must be in [1, input_len={input_len}], got {lags!r}.")
        self.shape = (input_len, num_nodes, in_features)
        self.horizon, self.target_channel, self.quantiles = horizon, target_channel, quantiles
        self.lags = lags or input_len
        n_feat = self.lags + in_features - 1 + 1
        cat = np.zeros(n_feat, dtype=bool)
        cat[-1] = num_nodes <= 255
        settings = dict(
            max_iter=max_iter,
            learning_rate=learning_rate,
            max_leaf_nodes=max_leaf_nodes,
            min_samples_leaf=min_samples_leaf,
            l2_regularization=l2_regularization,
            random_state=random_state,
            categorical_features=cat,
        )
        levels = [dict(loss="quantile", quantile=q) for q in quantiles] if quantiles else [{}]
        self.estimators = [[HistGradientBoostingRegressor(**settings, **lv) for lv in levels] for _ in range(horizon)]
        self.n_threads = n_threads
        self.fitted = False

    def check_params(self) -> None:
        """scikit-learn's own parameter checks, now: it runs them in ``fit``, after the MLflow run has opened."""
        for est in self.estimators[0]:
            est._validate_params()

    def features(self, x: np.ndarray) -> np.ndarray:
        """x [S, T, N, F] → design matrix [S*N, lags + F - 1 + 1] (row s*N + n)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 4 or x.shape[1:] != self.shape:
            raise ConfigError(f"gbrt expects x of shape [S, T, N, F] = [S, *{self.shape}], got {x.shape}.")
        s, _, n, _ = x.shape
        lags = x[:, -self.lags :, :, self.target_channel].transpose(0, 2, 1)  # [S, N, lags]
        other = np.delete(x[:, -1], self.target_channel, axis=-1)  # [S, N, F-1]
        node = np.broadcast_to(np.arange(n, dtype=np.float64)[None, :, None], (s, n, 1))  # [S, N, 1]
        return np.concatenate([lags, other, node], axis=-1).reshape(s * n, -1)

    def fit(self, x: np.ndarray, y: np.ndarray) -> "GBRTForecaster":
        """Fit on x [S, T, N, F] and targets y [S, H, N]."""
        feats = self.features(x)
        y = np.asarray(y, dtype=np.float64)
        if y.shape != (len(x), self.horizon, self.shape[1]):
            raise ConfigError(
                f"gbrt expects y of shape [S, H, N] = {(len(x), self.horizon, self.shape[1])}, got {y.shape}."
            )
        with threadpool_limits(self.n_threads, user_api="openmp"):
            for h, per_level in enumerate(self.estimators):
                target = y[:, h].reshape(-1)  # [S*N], row s*N + n like the features
                for est in per_level:
                    est.fit(feats, target)
        self.fitted = True
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """x [S, T, N, F] → [S, H, N], or [S, H, N, Q] sorted along Q when built with quantiles."""
        if not self.fitted:
            raise ConfigError("gbrt has not been fitted; call fit(x, y) before predict(x).")
        feats = self.features(x)
        s, n = len(feats) // self.shape[1], self.shape[1]
        with threadpool_limits(self.n_threads, user_api="openmp"):
            out = np.stack([np.stack([e.predict(feats) for e in lv], -1) for lv in self.estimators], 1)  # [S*N,H,Q]
        out = out.reshape(s, n, self.horizon, -1).transpose(0, 2, 1, 3)  # [S, H, N, Q]
        return np.sort(out, axis=-1) if self.quantiles else out[..., 0]

    def to_torch(self) -> nn.Module:
        """The fitted model as a torch module (scaled space, ``[B, T, N, F] -> [B, H, N]`` or ``[B, H, N, Q]``)
        that computes the same features and descends the same trees, so it exports to ONNX."""
        if not self.fitted:
            raise ConfigError("gbrt has not been fitted; call fit(x, y) before exporting it.")
        return GBRTModule(self)


class GBRTModule(nn.Module):
    """``GBRTForecaster.predict`` in torch: lags, the last step's other channels and the node index per cell,
    then one ``TreeEnsemble`` per horizon step and quantile level."""

    def __init__(self, model: GBRTForecaster) -> None:
        super().__init__()
        _, self.n, f = model.shape
        self.lags, self.target_channel, self.sort = model.lags, model.target_channel, bool(model.quantiles)
        self.register_buffer("other", torch.as_tensor([c for c in range(f) if c != model.target_channel]))
        self.trees = nn.ModuleList(nn.ModuleList(TreeEnsemble(e) for e in lv) for lv in model.estimators)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        s = x.shape[0]
        lags = x[:, -self.lags :, :, self.target_channel].transpose(1, 2)  # [S, N, lags]
        other = x[:, -1].index_select(-1, self.other)  # [S, N, F-1]
        node = torch.arange(self.n, dtype=torch.float64).view(1, self.n, 1).expand(s, self.n, 1)
        feats = torch.cat([lags, other, node], -1).reshape(s * self.n, -1)
        out = torch.stack([torch.stack([t(feats) for t in lv], -1) for lv in self.trees], 1)  # [S*N, H, Q]
        out = out.reshape(s, self.n, len(self.trees), -1).permute(0, 2, 1, 3)  # [S, H, N, Q]
        return out.sort(-1).values if self.sort else out[..., 0]
