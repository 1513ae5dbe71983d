"""Forecast metrics in real units (numpy): masked MAE/RMSE/MAPE, per-horizon rows, and T-GCN's five metrics.

Arrays are ``y, pred [S, H, N]`` and ``mask [S, H, N]`` bool (True where a target counts: observed and on an
evaluated node). An empty mask gives NaN rather than a made-up number.
"""

from collections.abc import Sequence

import numpy as np

NAN = float("nan")
ZERO_RELATIVE = 1e-9  # |target| at or under this fraction of the largest counts as 0 in MAPE


def _pick(y: np.ndarray, pred: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The counted entries of y and pred as float64 vectors."""
    y, pred = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if y.shape != pred.shape:
        raise ValueError(f"targets {y.shape} and predictions {pred.shape} must have the same shape")
    if mask is None:
        return y.ravel(), pred.ravel()
    mask = np.broadcast_to(np.asarray(mask, dtype=bool), y.shape)
    return y[mask], pred[mask]


def masked_mae(y: np.ndarray, pred: np.ndarray, mask: np.ndarray | None = None) -> float:
    a, b = _pick(y, pred, mask)
    return float(np.abs(a - b).mean()) if a.size else NAN


def masked_rmse(y: np.ndarray, pred: np.ndarray, mask: np.ndarray | None = None) -> float:
    a, b = _pick(y, pred, mask)
    return float(np.sqrt(((a - b) ** 2).mean())) if a.size else NAN


def masked_mape(y: np.ndarray, pred: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute percentage error in %, over counted entries whose target is not 0.

    "Not 0" is relative to the data's scale: a target under 1e-9 of the largest one is a zero that went through
    floating-point arithmetic (SZ-taxi's CSV holds speeds of 2.4e-17), and dividing by it would blow the mean up to
    1e15 % instead of leaving that entry out as an exact zero is.
    """
    a, b = _pick(y, pred, mask)
    nz = np.abs(a) > ZERO_RELATIVE * np.abs(a).max() if a.size else a != 0
    return float(np.abs((a[nz] - b[nz]) / a[nz]).mean() * 100) if nz.any() else NAN


def point_metrics(y: np.ndarray, pred: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """``{"mae", "rmse", "mape"}`` over all horizon steps."""
    return {"mae": masked_mae(y, pred, mask), "rmse": masked_rmse(y, pred, mask), "mape": masked_mape(y, pred, mask)}


def per_horizon(y: np.ndarray, pred: np.ndarray, mask: np.ndarray | None = None) -> list[dict[str, float]]:
    """One row per horizon step ``h = 1..H``: ``{"horizon", "mae", "rmse", "mape"}``."""
    mask = np.ones(np.shape(y), dtype=bool) if mask is None else np.broadcast_to(mask, np.shape(y))
    return [{"horizon": h + 1, **point_metrics(y[:, h], pred[:, h], mask[:, h])} for h in range(np.shape(y)[1])]


def tgcn_metrics(y: np.ndarray, pred: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """T-GCN's RMSE, MAE, Accuracy, R² and explained variance over every horizon step at once.

    As ``evaluation(a, b)`` in lehaifeng/T-GCN on ``[S*H, N]`` matrices: ``accuracy = 1 - ‖a-b‖_F / ‖a‖_F``,
    ``r2 = 1 - Σ(a-b)² / Σ(a-ā)²``, ``var = 1 - Var(a-b) / Var(a)`` (all entries pooled).
    """
    a, b = _pick(y, pred, mask)
    if not a.size:
        return {k: NAN for k in ("rmse", "mae", "accuracy", "r2", "var")}
    err = a - b
    return {
        "rmse": float(np.sqrt((err**2).mean())),
        "mae": float(np.abs(err).mean()),
        "accuracy": float(1 - np.linalg.norm(err) / np.linalg.norm(a)),
        "r2": float(1 - (err**2).sum() / ((a - a.mean()) ** 2).sum()),
        "var": float(1 - err.var() / a.var()),
    }


def quantile_metrics(
    y: np.ndarray, pred_q: np.ndarray, quantiles: Sequence[float], mask: np.ndarray | None = None
) -> dict[str, float]:
    """Pinball loss (real units, mean over levels) and coverage (%) of the outermost interval.

    Args:
        pred_q: ``[S, H, N, Q]`` predictions per level.
    """
    q = np.asarray(quantiles, dtype=np.float64)
    mask = np.ones(np.shape(y), dtype=bool) if mask is None else np.broadcast_to(mask, np.shape(y))
    a = np.asarray(y, dtype=np.float64)[mask]  # [M]
    p = np.asarray(pred_q, dtype=np.float64)[mask]  # [M, Q]
    if not a.size:
        return {"pinball": NAN, "coverage": NAN}
    err = a[:, None] - p
    pinball = np.maximum(q * err, (q - 1) * err).mean()
    inside = (a >= p[:, 0]) & (a <= p[:, -1])
    return {"pinball": float(pinball), "coverage": float(inside.mean() * 100)}


def median_level(quantiles: Sequence[float]) -> int:
    """Index of the level closest to 0.5: the point forecast of a quantile model."""
    return int(np.argmin(np.abs(np.asarray(quantiles) - 0.5)))
