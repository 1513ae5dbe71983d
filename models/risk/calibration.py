"""Strictly increasing score → magnitude calibration, so a ranking score can be put in risk units without
changing any per-hour order (Recall@K and MAP@K depend only on that order).

Isotonic regression (pool-adjacent-violators, Barlow et al. 1972; scikit-learn's ``IsotonicRegression``) gives a
non-decreasing step function; its block endpoints are kept as knots of a piecewise-linear map, and a small linear
term makes the map strictly increasing, because a flat step would tie cells whose scores differ and the GSNet
ranking breaks ties by cell index.
"""

import numpy as np
from sklearn.isotonic import IsotonicRegression

from cityagent.errors import ConfigError


class MonotoneCalibrator:
    """``f(s) = interp(s, knots) + slope · s`` with ``slope > 0``: a strictly increasing piecewise-linear map.

    Args:
        tie_slope: the linear term adds at most this share of the mean target across the fitted score range.
    """

    def __init__(self, tie_slope: float = 0.01) -> None:
        if not tie_slope > 0:
            raise ConfigError(f"tie_slope must be > 0 to keep the map strictly increasing, got {tie_slope!r}.")
        self.tie_slope = tie_slope
        self.knots_x: np.ndarray | None = None
        self.knots_y: np.ndarray | None = None
        self.slope = 0.0

    def fit(self, score: np.ndarray, target: np.ndarray) -> "MonotoneCalibrator":
        """Fit ``E[target | score]`` as a non-decreasing function of ``score`` (1-D arrays of equal length)."""
        score, target = np.asarray(score, dtype=np.float64).ravel(), np.asarray(target, dtype=np.float64).ravel()
        if len(score) != len(target) or len(score) < 2:
            raise ConfigError(f"calibration needs ≥ 2 (score, target) pairs of equal length, got {len(score)}.")
        iso = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(score, target)
        self.knots_x, self.knots_y = iso.X_thresholds_.astype(np.float64), iso.y_thresholds_.astype(np.float64)
        span = max(float(score.max() - score.min()), 1e-12)
        self.slope = self.tie_slope * max(float(np.abs(target).mean()), 1e-12) / span
        return self

    def __call__(self, score: np.ndarray) -> np.ndarray:
        """Calibrated values of ``score`` (any shape)."""
        if self.knots_x is None or self.knots_y is None:
            raise ConfigError("the calibrator has not been fitted; call fit(score, target) first.")
        score = np.asarray(score, dtype=np.float64)
        return np.interp(score, self.knots_x, self.knots_y) + self.slope * (score - self.knots_x[0])
