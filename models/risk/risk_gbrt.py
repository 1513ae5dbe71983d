"""Risk GBRT: a gradient-boosted classifier of "any accident in this cell next hour" (scikit-learn's histogram
GBM, after LightGBM, Ke et al. NeurIPS 2017) on per cell-hour features, with an optional monotone calibration
of its score to risk units.

Why a classifier: ~99 % of cell-hours have zero risk and the GSNet Recall@K / MAP@K only rank cells within each
hour, so the ranking is a probability of any risk. Why a calibration: GSNet's RMSE counts only cells whose true
risk is > 0 (shared/data/risk/SOURCES.md), so its optimum at every cell is E[risk | risk > 0], which a strictly
increasing map of the score can approach without changing any order, hence without changing Recall or MAP.
"""

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits
from torch import nn

from cityagent.errors import ConfigError
from cityagent.models.params import needs_grid
from cityagent.models.registry import register
from cityagent.models.risk.calibration import MonotoneCalibrator
from cityagent.models.risk.risk_features import CellRates, Layout, hour_of_week, out_of_fold_features, window_features
from cityagent.models.risk.risk_module import RiskGBRTModule


@register("risk_gbrt", domain="risk", kind="classical")
class RiskGBRT:
    """P(risk > 0) per cell-hour from boosted trees; output E[risk] or, calibrated, E[risk | risk > 0, score].

    Trained on the ``cells`` cells with the most training risk (47 of the 50 evaluated Chicago cells are among
    the top 50; the rest are near-empty and dilute the trees), predicted for every cell. Arrays are numpy in the
    scaled space of the deep models; risk must be 0 where there is none.

    Args:
        num_nodes: N = rows × cols.
        in_features: F, GSNet's 41 channels (hour, weekday, weather, flow channels as in ``Layout``).
        input_len: T_in = ``weeks`` week-prior frames + recent hours.
        horizon: must be 1 (GSNet forecasts the next hour).
        target_channel: the risk channel.
        adjacency: [N, N] semantic graph; its row-normalised mean of recent risk is a feature (None: skipped).
        grid: (rows, cols), required for the grid-neighbour features.
        cells: how many cells (by training risk) the trees train on.
        folds: time folds for the out-of-fold cell rates of the training rows.
        calibrate: map the score to E[risk | risk > 0] with a strictly increasing map fitted on the last
            ``calib_frac`` of the training windows by a model trained on the rest; False outputs
            P(risk > 0) × mean positive risk, an unconditional expectation.
        calib_frac: share of training windows (the latest) held out to fit the calibration.
        max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization: boosting settings.
        random_state: seed of the estimator.
        halflife: weigh each training window by 0.5 ** (age / halflife), its age counted in windows (hours) back
            from the newest, so the trees follow where accidents happen lately; None weighs all alike.
        hour_balance: weigh each training hour by 1 / (its cells with risk), so every hour's accidents count
            alike, as GSNet's Recall@K and MAP@K average over hours; False weighs every cell-hour alike (busy hours
            then dominate the fit).
        n_threads: OpenMP threads (None = all cores).
        week_frame, weeks, hour_channel, dow_channel, flow_channels: window layout (GSNet's by default).
    """

    def __init__(
        self,
        num_nodes: int,
        in_features: int,
        input_len: int,
        horizon: int,
        target_channel: int = 0,
        adjacency: np.ndarray | None = None,
        grid: tuple[int, int] | None = None,
        cells: int = 50,
        folds: int = 4,
        calibrate: bool = True,
        calib_frac: float = 0.2,
        max_iter: int = 300,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 100,
        l2_regularization: float = 0.0,
        random_state: int = 0,
        halflife: float | None = None,
        hour_balance: bool = False,
        n_threads: int | None = None,
        week_frame: int = 3,
        weeks: int = 4,
        hour_channel: int = 1,
        dow_channel: int = 25,
        flow_channels: tuple[int, ...] = (39, 40),
    ) -> None:
        if grid is None:
            raise needs_grid("risk_gbrt")
        if folds < 2 or not 0 < calib_frac < 1:
            raise ConfigError(f"risk_gbrt needs folds >= 2 and 0 < calib_frac < 1; got {folds} and {calib_frac}.")
        # a task of another layout may still build the estimator (the registry and export tests do); fit says why not
        self.layout_error = None
        if horizon != 1:
            self.layout_error = f"risk_gbrt forecasts the next hour only (GSNet's pre_len = 1); got horizon={horizon}."
        elif not 0 <= week_frame < weeks < input_len:
            self.layout_error = (
                f"risk_gbrt needs 0 <= week_frame < weeks < input_len={input_len}; got {week_frame}, {weeks}."
            )
        elif max(hour_channel + 23, dow_channel + 6, 38, *flow_channels) >= in_features:
            self.layout_error = f"risk_gbrt expects GSNet's 41-channel layout; got in_features={in_features}."
        self.shape = (input_len, num_nodes, in_features)
        self.grid, self.target_channel = tuple(grid), target_channel
        self.adjacency = None if adjacency is None else np.asarray(adjacency, dtype=np.float64)
        self.layout = Layout(week_frame, weeks, hour_channel, dow_channel, flow_channels=tuple(flow_channels))
        self.cells, self.folds, self.calibrate, self.calib_frac = min(cells, num_nodes), folds, calibrate, calib_frac
        self.settings = dict(
            max_iter=max_iter,
            learning_rate=learning_rate,
            max_leaf_nodes=max_leaf_nodes,
            min_samples_leaf=min_samples_leaf,
            l2_regularization=l2_regularization,
            random_state=random_state,
            early_stopping=False,
        )
        if halflife is not None and not halflife > 0:
            raise ConfigError(f"risk_gbrt halflife={halflife!r} must be a positive number of windows, or null.")
        self.n_threads, self.halflife, self.hour_balance = n_threads, halflife, hour_balance
        self.estimator: HistGradientBoostingClassifier | None = None
        self.rates: CellRates | None = None
        self.calibrator: MonotoneCalibrator | None = None
        self.positive_mean = 1.0

    def check_params(self) -> None:
        """The layout and scikit-learn's parameter checks, now: ``fit`` runs them after the MLflow run has opened."""
        if self.layout_error:
            raise ConfigError(self.layout_error)
        HistGradientBoostingClassifier(**self.settings)._validate_params()

    def _check(self, x: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        if self.layout_error:
            raise ConfigError(self.layout_error)
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 4 or x.shape[1:] != self.shape:
            raise ConfigError(f"risk_gbrt expects x of shape [S, T, N, F] = [S, *{self.shape}], got {x.shape}.")
        if y is None:
            return x, None
        y = np.asarray(y, dtype=np.float64)
        if y.shape != (len(x), 1, self.shape[1]):
            raise ConfigError(f"risk_gbrt expects y of shape [S, 1, N] = {(len(x), 1, self.shape[1])}, got {y.shape}.")
        return x, y[:, 0]

    def _train(self, x: np.ndarray, y: np.ndarray) -> tuple[HistGradientBoostingClassifier, CellRates, np.ndarray]:
        """Fit trees on the top cells with out-of-fold rates; returns (trees, rates from all of x, trained cells)."""
        top = np.argsort(-y.sum(0), kind="stable")[: self.cells]
        feats = out_of_fold_features(x, y, self.layout, self.grid, self.folds, self.target_channel, self.adjacency)
        rows = feats[:, top].reshape(-1, feats.shape[-1])
        weight = None
        if getattr(self, "halflife", None) is not None:  # windows come oldest first; the newest weighs 1
            age = np.arange(len(x))[::-1]
            weight = np.repeat(0.5 ** (age / self.halflife), len(top))  # rows s * len(top) + cell
        if getattr(self, "hour_balance", False):  # each hour's positives weigh 1 together, as Recall@K averages hours
            per_hour = 1.0 / np.maximum((y[:, top] > 0).sum(1), 1)  # [S]
            balance = np.repeat(per_hour / per_hour.mean(), len(top))
            weight = balance if weight is None else weight * balance
        est = HistGradientBoostingClassifier(**self.settings)
        est.fit(rows, (y[:, top] > 0).reshape(-1), sample_weight=weight)
        return est, CellRates(hour_of_week(x, self.layout), y), top

    def _score(self, est: HistGradientBoostingClassifier, rates: CellRates, x: np.ndarray) -> np.ndarray:
        feats = window_features(x, rates, self.layout, self.grid, self.target_channel, self.adjacency)
        if est.classes_.size == 1:  # no risk at all in training: a constant score
            return np.full(feats.shape[:2], float(est.classes_[0]))
        return est.predict_proba(feats.reshape(-1, feats.shape[-1]))[:, 1].reshape(feats.shape[:2])

    def fit(self, x: np.ndarray, y: np.ndarray) -> "RiskGBRT":
        """Fit on x [S, T, N, F] and targets y [S, 1, N] (then the calibration, when asked)."""
        x, y = self._check(x, y)
        positive = y[y > 0]
        if positive.size == 0:
            raise ConfigError("risk_gbrt needs some training targets with risk > 0.")
        self.positive_mean = float(positive.mean())
        with threadpool_limits(self.n_threads, user_api="openmp"):
            if self.calibrate:
                cut = int(len(x) * (1 - self.calib_frac))
                est, rates, top = self._train(x[:cut], y[:cut])
                score = self._score(est, rates, x[cut:])[:, top]
                held = y[cut:, top]
                if (held > 0).sum() < 2:
                    raise ConfigError("risk_gbrt calibration needs ≥ 2 held-out targets with risk > 0.")
                self.calibrator = MonotoneCalibrator().fit(score[held > 0], held[held > 0])
            self.estimator, self.rates, _ = self._train(x, y)
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        """x [S, T, N, F] → [S, N] P(risk > 0), the ranking score."""
        if self.estimator is None or self.rates is None:
            raise ConfigError("risk_gbrt has not been fitted; call fit(x, y) before predict(x).")
        x, _ = self._check(x)
        with threadpool_limits(self.n_threads, user_api="openmp"):
            return self._score(self.estimator, self.rates, x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """x [S, T, N, F] → [S, 1, N] risk: calibrated E[risk | risk > 0, score], or P(risk > 0) × mean positive."""
        p = self.score(x)
        out = self.calibrator(p) if self.calibrator is not None else p * self.positive_mean
        return out[:, None]

    def to_torch(self) -> nn.Module:
        """The fitted model as a torch module (scaled space, ``[B, T, N, F] -> [B, 1, N]``) that computes the same
        window features, classifier and calibration, so it exports to ONNX (``risk_module``)."""
        if self.estimator is None or self.rates is None:
            raise ConfigError("risk_gbrt has not been fitted; call fit(x, y) before exporting it.")
        if self.layout_error:
            raise ConfigError(self.layout_error)
        if self.estimator.classes_.size == 1:
            raise ConfigError("risk_gbrt saw one class only in training (no risk or risk everywhere); retrain it.")
        return RiskGBRTModule(self)
