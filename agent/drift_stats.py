"""The two-sample statistics of drift watch, computed against a compact reference rather than raw training data."""

import numpy as np
from numpy.typing import ArrayLike

LEVELS = np.linspace(0.0, 1.0, 101)  # the reference keeps these quantiles of each channel
EPS = 1e-4  # floor for bin fractions in PSI, so an empty bin does not make it infinite


def bin_fractions(edges: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Share of ``x`` in each of the len(edges)+1 bins (−∞, e0), [e0, e1), …, [e_last, ∞)."""
    return np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1) / max(len(x), 1)


def _ref_cdf(quantiles: np.ndarray, x: np.ndarray, side: str) -> np.ndarray:
    """The reference CDF, linear between its quantiles; ``side='left'`` gives the left limit at ties."""
    k = np.searchsorted(quantiles, x, side=side)  # quantiles strictly below (left) / at or below (right) x
    inner = (k > 0) & (k < len(quantiles))
    lo, hi = quantiles[np.clip(k - 1, 0, None)], quantiles[np.clip(k, None, len(quantiles) - 1)]
    step = LEVELS[1] - LEVELS[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(hi > lo, (x - lo) / (hi - lo), 0.0)
    out = np.where(k >= len(quantiles), 1.0, 0.0)
    return np.where(inner, LEVELS[np.clip(k - 1, 0, None)] + frac * step, out)


def ks_statistic(quantiles: ArrayLike, recent: np.ndarray) -> float:
    """Largest gap between the reference CDF and the empirical CDF of ``recent`` (checked from both sides)."""
    q, x = np.asarray(quantiles, dtype=np.float64), np.sort(recent)
    pts = np.union1d(x, q)
    right = np.abs(_ref_cdf(q, pts, "right") - np.searchsorted(x, pts, side="right") / len(x))
    left = np.abs(_ref_cdf(q, pts, "left") - np.searchsorted(x, pts, side="left") / len(x))
    return float(max(right.max(), left.max()))


def psi(expected: ArrayLike, actual: ArrayLike) -> float:
    """Population stability index between two bin-fraction vectors."""
    e, a = np.clip(np.asarray(expected, float), EPS, None), np.clip(np.asarray(actual, float), EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))
