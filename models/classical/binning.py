"""Weighted quantile bins computed once, in one sort per feature, before a histogram GBM sees the features.

scikit-learn 1.9 bins each feature of a weighted fit (≤ 200k rows) by calling its weighted percentile once per
threshold: 254 sorts per feature per estimator, ~11x the fit time on DiDi. Here each feature is
sorted once, all thresholds are read off its cumulative weights, and the features are replaced by their bin
codes; the GBM then finds ≤ 255 distinct values per feature and bins them as they are (midpoints, no percentiles).
The partition of every feature is the weighted-quantile one scikit-learn would have chosen, computed on all rows
instead of its early-stopping training part.
"""

import numpy as np

from cityagent.errors import ConfigError


class QuantileBins:
    """Per-column thresholds; ``codes(x)`` maps value ``v`` to bin ``i`` iff ``t[i-1] < v <= t[i]``.

    Args:
        max_bins: bins per column (≤ 255, the histogram GBM's limit for non-missing values).
        skip: columns passed through unchanged (categorical ones, already small integers).
    """

    def __init__(self, max_bins: int = 255, skip: tuple[int, ...] = ()) -> None:
        if not 2 <= max_bins <= 255:
            raise ConfigError(f"max_bins={max_bins!r} must be in [2, 255] (the histogram GBM's limit).")
        self.max_bins, self.skip = max_bins, tuple(skip)
        self.thresholds: list[np.ndarray | None] | None = None

    def fit(self, x: np.ndarray, weight: np.ndarray | None = None) -> "QuantileBins":
        """Thresholds of every column of ``x [rows, cols]`` from its (weighted) quantiles; NaNs are ignored."""
        x = np.asarray(x, dtype=np.float64)
        w = np.ones(len(x)) if weight is None else np.asarray(weight, dtype=np.float64)
        if w.shape != (len(x),) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ConfigError(f"sample weights must be {len(x)} finite non-negative numbers, got shape {w.shape}.")
        inner = np.linspace(0, 100, self.max_bins + 1)[1:-1]
        self.thresholds = [None if j in self.skip else self._column(x[:, j], w, inner) for j in range(x.shape[1])]
        return self

    def _column(self, col: np.ndarray, w: np.ndarray, inner: np.ndarray) -> np.ndarray:
        keep = ~np.isnan(col) & (w > 0)
        col, w = col[keep], w[keep]
        order = np.argsort(col, kind="stable")
        col, w = col[order], w[order]
        distinct = np.unique(col)
        if len(distinct) <= self.max_bins:  # few values: split between each pair, as the GBM itself does
            return (distinct[:-1] + distinct[1:]) / 2
        cum = np.cumsum(w)
        rank = inner / 100 * cum[-1]  # percentiles then scaled, in scikit-learn's order of float operations
        # the averaged inverted CDF: where a quantile falls on a step of the CDF, average the values either side
        at = np.minimum(np.searchsorted(cum, rank), len(col) - 1)
        on_step = cum[at] - rank <= np.finfo(np.float64).eps
        nxt = np.minimum(at + 1, len(col) - 1)
        return np.unique(np.where(on_step, (col[at] + col[nxt]) / 2, col[at]))

    def codes(self, x: np.ndarray) -> np.ndarray:
        """``x [rows, cols]`` → the same shape of bin codes (float; NaN stays NaN, skipped columns unchanged)."""
        if self.thresholds is None:
            raise ConfigError("the quantile bins are not fitted; fit the model before predicting.")
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.thresholds):
            raise ConfigError(f"expected features of shape [rows, {len(self.thresholds)}], got {x.shape}.")
        out = x.copy()
        for j, t in enumerate(self.thresholds):
            if t is not None:
                c = np.searchsorted(t, x[:, j], side="left").astype(np.float64)
                out[:, j] = np.where(np.isnan(x[:, j]), np.nan, c)
        return out
