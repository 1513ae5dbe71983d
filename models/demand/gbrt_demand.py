"""GBRT for cell demand: gradient-boosted trees that correct a baseline forecast of each cell (its usual hourly
level scaled by the current level, or the historical mean), on closeness/period/trend summaries, neighbouring
cells, calendar channels and the recent level against each cell's usual hourly profile (see ``cell_features``)."""

import copy
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits
from torch import nn

from cityagent.errors import ConfigError
from cityagent.models.classical.binning import QuantileBins
from cityagent.models.conformal import cqr_margin
from cityagent.models.demand.cell_features import CellFeatures, SlotProfile
from cityagent.models.demand.cell_module import GBRTDemandModule
from cityagent.models.registry import register


@register("gbrt_demand", domain="demand", kind="classical")
class GBRTDemand:
    """HistGradientBoostingRegressors per horizon step (and quantile level) on ``CellFeatures``, fitted to the
    residual to a baseline.

    The baseline is ``CellFeatures.baseline``: the HM of ``base_frames`` and, with ``tod_channel``, mixed with each
    cell's usual level at the target hour scaled by how far its last ``recent`` hours ran above or below theirs.
    Predicting the residual keeps the trees' piecewise-constant output near a strong forecast, so early stopping
    and leaf regularisation shrink towards it rather than towards a global mean, and a demand shock the training
    weeks never showed (DiDi's validation days) still moves the forecast, through the baseline.

    Args:
        num_nodes: N (cells or stations).
        in_features: F; channels other than the target (calendar) enter from the last input step.
        input_len: T_in.
        horizon: H, one estimator per step.
        quantiles: levels; each gets its own quantile-loss estimators of the residual (the baseline is a location,
            so a residual quantile plus the baseline is the forecast's quantile), and outputs are sorted per level.
        target_channel: the channel to forecast.
        adjacency: [N, N] graph for neighbour means of the base frames; None leaves them out.
        closeness_frames, period_frames, trend_frames: input indices of each group (default: every frame is
            closeness); their means and the last frame minus the last period/trend frame are features.
        base_frames: frames averaged into the HM baseline (default every frame), e.g. UCTB's Xi'an HM 1-1-2.
        neighbours: use the adjacency's neighbour features.
        tod_channel: channel with the time of day in [0, 1); when set, a per-cell profile by slot (fitted on the
            training windows' ``profile_frames``) adds the level-vs-usual features. None: no profile.
        weekend_channel: channel with a 0/1 weekend flag for separate weekend profiles, or None.
        day_channel: channel with the day of week 0..6 (calendar ``dow_index``) for a profile per weekday, instead
            of ``weekend_channel`` (with ``profile_rank`` the weekdays share their shapes rather than their noise).
        steps_per_day: slots per day of the profile (24 hourly).
        recent: last closeness frames whose level against the profile scales the profile forecast.
        profile_weight: weight of the profile forecast in the baseline, the rest HM (with ``tod_channel``; 0.5 was
            best over DiDi's validation split and two earlier training blocks, between 0, 0.25, 0.6, 0.75 and 1).
        max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization: boosting settings.
        max_features: share of the feature columns each split may choose from, drawn anew per split (1: all).
        random_state: seed of the early-stopping split and of the column draws.
        seeds: estimators per step, with seeds ``random_state + k``, averaged; their early-stopping splits differ,
            which smooths the stopping point's noise (about ±1 % RMSE on DiDi between single seeds).
        halflife: weigh each training window by 0.5 ** (age / halflife), its age counted in windows back from the
            newest (demand drifts over the weeks; 96 hourly windows was best over DiDi's three selection blocks,
            between 24 and 336); None weighs all alike.
        prebin: with ``halflife``, bin the features by their weighted quantiles once, before the estimators see
            them (``QuantileBins``, the thresholds scikit-learn would choose): scikit-learn 1.9 bins a weighted fit
            with one weighted percentile per threshold, ~11x the fit time on DiDi. False leaves it to scikit-learn.
        city_level: with ``tod_channel``, add the whole city's recent level against its usual as features and
            scale the baseline's profile forecast by it (less noisy than one cell's or its neighbours' level, and
            a city-wide shock shows in it first).
        profile_frames: ``closeness`` fits the profile on the closeness frames of the training windows; ``all``
            on every frame, so the period and trend frames add the weeks before the first window's closeness.
        profile_folds: with k > 1, the training windows' profile features and baseline come from a profile fitted
            on the other k - 1 contiguous blocks of windows, so a window's own target hour (a closeness frame of
            later windows) is not in the profile it is described by; as at prediction time, where the target is
            unseen. 0 or 1: one in-sample profile (the trees then learn to trust it more than they should).
        profile_rank: keep the profile's ``profile_rank`` leading components across cells (``SlotProfile``'s
            ``rank``), which smooths slots seen on few days; None: each cell's raw slot means.
        conformal: with quantiles, widen (or narrow) the outermost levels by a split-conformal margin per step
            (conformalised quantile regression, Romano et al. 2019) so the interval covers its nominal share:
            a first fit on all but the newest ``conformal_frac`` of the windows is scored on them, and the margin
            is the matching quantile of how far each target fell outside its interval. Doubles the fit time.
        conformal_frac: share of the training windows (the newest) held out for that margin.
        loss: ``squared_error`` fits the trees to the residual ``y - baseline``; ``poisson`` fits them to a factor
            of the baseline under the Poisson deviance (``y / b`` weighted by ``b``, the baseline floored at
            1e-3 of the mean target: Poisson regression of the counts with ``log b`` as offset), so the forecast
            is ``b * exp(trees)``, never negative, and a count's noise growing with its level does not let the
            busiest cells dominate the fit. Needs targets ≥ 0 in the scaled space (min-max of counts: 0 stays 0).
        n_threads: OpenMP threads (None = all cores; 1 avoids spin-wait stalls on shared cores).
    """

    def __init__(
        self,
        num_nodes: int,
        in_features: int,
        input_len: int,
        horizon: int,
        quantiles: tuple[float, ...] | None = None,
        target_channel: int = 0,
        adjacency: np.ndarray | None = None,
        closeness_frames: Sequence[int] | None = None,
        period_frames: Sequence[int] | None = None,
        trend_frames: Sequence[int] | None = None,
        base_frames: Sequence[int] | None = None,
        neighbours: bool = True,
        tod_channel: int | None = None,
        weekend_channel: int | None = None,
        day_channel: int | None = None,
        steps_per_day: int = 24,
        recent: int = 3,
        profile_weight: float = 0.5,
        max_iter: int = 200,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        min_samples_leaf: int = 20,
        l2_regularization: float = 0.0,
        max_features: float = 1.0,
        random_state: int = 0,
        seeds: int = 1,
        halflife: float | None = None,
        city_level: bool = False,
        prebin: bool = True,
        profile_frames: str = "closeness",
        profile_folds: int = 0,
        profile_rank: int | None = None,
        conformal: bool = False,
        conformal_frac: float = 0.2,
        loss: str = "squared_error",
        n_threads: int | None = None,
    ) -> None:
        channels = (("tod_channel", tod_channel), ("weekend_channel", weekend_channel), ("day_channel", day_channel))
        for name, c in channels:
            if c is not None and not (0 <= c < in_features and c != target_channel):
                raise ConfigError(f"gbrt_demand {name}={c!r} must be a calendar channel in [0, {in_features}).")
        if tod_channel is None and (weekend_channel is not None or day_channel is not None):
            raise ConfigError(
                "gbrt_demand weekend_channel and day_channel split the hourly profile, which needs tod_channel: set "
                "tod_channel to the time-of-day channel, or drop them."
            )
        self.features = CellFeatures.build(
            input_len,
            num_nodes,
            in_features,
            target_channel,
            closeness_frames,
            period_frames,
            trend_frames,
            base_frames,
            adjacency if neighbours else None,
            None
            if tod_channel is None
            else SlotProfile(steps_per_day, tod_channel, weekend_channel, profile_rank, day_channel),
            recent,
            profile_weight,
            city_level,
            profile_frames == "all",
        )
        self.horizon, self.n_threads, self.fitted = horizon, n_threads, False
        self.quantiles = tuple(quantiles) if quantiles else None
        cat = np.zeros(self.features.width, dtype=bool)
        cat[self.features.node_column] = num_nodes <= 255  # the histogram GBM's category limit
        if not 1 <= recent <= len(self.features.closeness):
            raise ConfigError(f"gbrt_demand recent={recent!r} must be in [1, {len(self.features.closeness)}].")
        if not 0.0 <= profile_weight <= 1.0:
            raise ConfigError(f"gbrt_demand profile_weight={profile_weight!r} must be in [0, 1].")
        if seeds < 1:
            raise ConfigError(f"gbrt_demand seeds must be at least 1, got {seeds!r}.")
        if isinstance(max_features, bool) or not (isinstance(max_features, int | float) and 0 < max_features <= 1):
            raise ConfigError(f"gbrt_demand max_features={max_features!r} must be a share in (0, 1].")
        if city_level and tod_channel is None:
            raise ConfigError("gbrt_demand city_level needs the profile: set tod_channel to the time-of-day channel.")
        if profile_frames not in ("closeness", "all"):
            raise ConfigError(f"gbrt_demand profile_frames={profile_frames!r} must be 'closeness' or 'all'.")
        if isinstance(profile_folds, bool) or not (isinstance(profile_folds, int) and profile_folds >= 0):
            raise ConfigError(f"gbrt_demand profile_folds={profile_folds!r} must be a whole number ≥ 0 (0: no folds).")
        if profile_rank is not None and (
            isinstance(profile_rank, bool) or not isinstance(profile_rank, int) or profile_rank < 1
        ):
            raise ConfigError(f"gbrt_demand profile_rank={profile_rank!r} must be a whole number ≥ 1, or null.")
        if halflife is not None and not halflife > 0:
            raise ConfigError(f"gbrt_demand halflife={halflife!r} must be a positive number of windows, or null.")
        self.halflife, self.profile_folds = halflife, profile_folds
        if conformal and (self.quantiles is None or len(self.quantiles) < 2):
            raise ConfigError("gbrt_demand conformal needs an interval: set train.quantiles to ≥ 2 levels.")
        if not 0 < conformal_frac < 1:
            raise ConfigError(f"gbrt_demand conformal_frac={conformal_frac!r} must be in (0, 1).")
        self.conformal, self.conformal_frac = conformal, conformal_frac
        self.margin = np.zeros(horizon)  # added below the lowest level and above the highest, per step
        # node ids stay categorical; the other columns become weighted-quantile bin codes
        self.bins = QuantileBins(skip=(self.features.node_column,)) if halflife is not None and prebin else None
        if loss not in ("squared_error", "poisson"):
            raise ConfigError(f"gbrt_demand loss={loss!r} must be 'squared_error' or 'poisson'.")
        if loss == "poisson" and self.quantiles:
            raise ConfigError(
                "gbrt_demand loss='poisson' is for point forecasts; quantile levels fit the quantile loss of the "
                "residual: set model.params.loss=squared_error with train.quantiles (or drop train.quantiles)."
            )
        self.loss, self.floor = loss, 0.0
        if self.quantiles:
            losses = [dict(loss="quantile", quantile=q) for q in self.quantiles]
        else:
            losses = [dict(loss=loss)]
        # [step][level][seed]; a point model has one level
        self.estimators = [
            [
                [
                    HistGradientBoostingRegressor(
                        max_iter=max_iter,
                        learning_rate=learning_rate,
                        max_leaf_nodes=max_leaf_nodes,
                        min_samples_leaf=min_samples_leaf,
                        l2_regularization=l2_regularization,
                        random_state=random_state + k,
                        categorical_features=cat,
                        max_features=float(max_features),
                        **loss,
                    )
                    for k in range(seeds)
                ]
                for loss in losses
            ]
            for _ in range(horizon)
        ]

    def check_params(self) -> None:
        """scikit-learn's own parameter checks, now: it runs them in ``fit``, after the MLflow run has opened."""
        for per_seed in self.estimators[0]:
            for est in per_seed:
                est._validate_params()

    def fit(self, x: np.ndarray, y: np.ndarray) -> "GBRTDemand":
        """Fit on x [S, T, N, F] and targets y [S, H, N] (scaled space), windows oldest first (``halflife``)."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        want = (len(x), self.horizon, self.features.num_nodes)
        if y.shape != want:
            raise ConfigError(f"gbrt_demand expects y of shape [S, H, N] = {want}, got {y.shape}.")
        if self.conformal:
            self.margin = self._conformal_margin(x, y)
        feats, base = self.training_features(x)
        weight = None
        if self.halflife is not None:  # windows come oldest first; the newest weighs 1
            age = np.arange(len(x))[::-1]
            weight = np.repeat(0.5 ** (age / self.halflife), self.features.num_nodes)
        if self.bins is not None:
            feats = self.bins.fit(feats, weight).codes(feats)
        if getattr(self, "loss", "squared_error") == "poisson":
            if y.min() < 0:
                raise ConfigError(f"gbrt_demand loss='poisson' needs targets ≥ 0 (scaled), got min {y.min():.4g}.")
            self.floor = 1e-3 * max(float(y.mean()), 1e-12)
            b = np.maximum(base, self.floor)  # [S, N]
            # Poisson deviance of y against base * f equals that of y / base against f weighted by base: an offset
            target = y / b[:, None]
            step_weight = b.reshape(-1) if weight is None else b.reshape(-1) * weight
        else:
            target, step_weight = y - base[:, None], weight  # [S, H, N]
        with threadpool_limits(self.n_threads, user_api="openmp"):
            for h, per_level in enumerate(self.step_estimators()):
                for est in (e for per_seed in per_level for e in per_seed):
                    est.fit(feats, target[:, h].reshape(-1), sample_weight=step_weight)  # rows s*N + n
        self.fitted = True
        return self

    def _conformal_margin(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``[H]`` the CQR margin: fit a copy on the older windows, score the newest ``conformal_frac`` of them."""
        cut = round(len(x) * (1 - self.conformal_frac))
        if cut < 1 or len(x) - cut < 2:
            raise ConfigError(f"gbrt_demand conformal needs more windows than {len(x)} to hold some out.")
        first = copy.deepcopy(self)
        first.conformal = False
        return cqr_margin(first.fit(x[:cut], y[:cut]).predict(x[cut:]), y[cut:], tuple(self.quantiles))

    def training_features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features ``[S*N, K]`` and baseline ``[S, N]`` of the training windows ``x``; fits the profile that
        ``predict`` uses on all of them, and with ``profile_folds`` describes each block by the others' profile."""
        f = self.features.fit(x)
        folds = min(self.profile_folds, len(x)) if f.profile is not None else 0
        if folds <= 1:
            return f(x), f.baseline(x)
        n, p = f.num_nodes, f.profile
        feats, base = np.empty((len(x) * n, f.width)), np.empty((len(x), n))
        for block in np.array_split(np.arange(len(x)), folds):
            rest = np.delete(np.arange(len(x)), block)
            other = p.empty()
            g = replace(f, profile=other.fit(x[rest], f.profile_frames, f.target_channel))
            feats[block[0] * n : (block[-1] + 1) * n], base[block] = g(x[block]), g.baseline(x[block])
        return feats, base

    def step_estimators(self) -> list[list[list[HistGradientBoostingRegressor]]]:
        """The estimators as ``[step][level][seed]`` (models saved before quantiles held ``[step][seed]``)."""
        if not hasattr(self, "quantiles"):
            return [[per_seed] for per_seed in self.estimators]
        return self.estimators

    def predict(self, x: np.ndarray) -> np.ndarray:
        """x [S, T, N, F] → [S, H, N], or [S, H, N, Q] sorted along Q when built with quantiles."""
        if not self.fitted:
            raise ConfigError("gbrt_demand has not been fitted; call fit(x, y) before predict(x).")
        feats = self.features(x)
        if getattr(self, "bins", None) is not None:  # models saved before prebin have no bins
            feats = self.bins.codes(feats)
        s, n = len(x), self.features.num_nodes
        with threadpool_limits(self.n_threads, user_api="openmp"):
            out = np.stack(
                [
                    np.stack([np.mean([e.predict(feats) for e in per_seed], 0) for per_seed in per_level], -1)
                    for per_level in self.step_estimators()
                ],
                1,
            )  # [S*N, H, Q]
        out = out.reshape(s, n, self.horizon, -1).transpose(0, 2, 1, 3)  # [S, H, N, Q]
        base = self.features.baseline(np.asarray(x, dtype=np.float64))[:, None, :, None]
        if getattr(self, "loss", "squared_error") == "poisson":
            out = out * np.maximum(base, self.floor)
        else:
            out = out + base
        if not getattr(self, "quantiles", None):
            return out[..., 0]
        if out.shape[-1] > 1:  # the conformal margin below the lowest level and above the highest
            margin = getattr(self, "margin", np.zeros(self.horizon))[None, :, None]  # older models have none
            out[..., 0], out[..., -1] = out[..., 0] - margin, out[..., -1] + margin
        return np.sort(out, axis=-1)

    def to_torch(self) -> nn.Module:
        """The fitted model as a torch module (scaled space, ``[B, T, N, F] -> [B, H, N]``) that computes the same
        features, bins and trees, so it exports to ONNX (``cell_module``)."""
        if not self.fitted:
            raise ConfigError("gbrt_demand has not been fitted; call fit(x, y) before exporting it.")
        return GBRTDemandModule(self)
