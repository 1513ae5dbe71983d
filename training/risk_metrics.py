"""Accident-risk metrics exactly as GSNet's ``lib/metrics.py`` computes them (shared/data/risk/SOURCES.md).

Reference: Wang et al., AAAI 2021 (GSNet); RiskContra's metrics file is byte-identical. Arrays are
``y, pred [S, H, N]`` in real risk units and ``region [N]`` bool (the risk_mask cells).
"""

from collections.abc import Sequence

import numpy as np

NAN = float("nan")
OUTSIDE = -1000.0  # GSNet pushes cells outside the region this far down before ranking


def gsnet_rmse(y: np.ndarray, pred: np.ndarray, region: np.ndarray) -> float:
    """``m = region * (y > 0); m /= mean(m); sqrt(mean(((y - pred) * m)²))`` over every entry.

    Not a plain RMSE: it equals ``sqrt(mean of err² over non-zero region targets / frac)`` where ``frac`` is the
    share of entries that are non-zero region targets.
    """
    y, pred = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    m = (np.asarray(region, dtype=bool)[None, None, :] & (y > 0)).astype(np.float64)  # [S, H, N]
    if m.mean() == 0:
        return NAN
    m /= m.mean()
    return float(np.sqrt((((y - pred) * m) ** 2).mean()))


def _top_k(y: np.ndarray, pred: np.ndarray, region: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per sample: K = region cells with true risk > 0; the top-K cells by truth and by prediction.

    Ties keep the lower cell index first, as GSNet's stable ``sorted(..., reverse=True)`` does.
    """
    pen = np.where(np.asarray(region, dtype=bool), 0.0, OUTSIDE)[None, None, :]
    s = len(y)
    t = (np.asarray(y, dtype=np.float64) + pen).reshape(s, -1)  # [S, H*N]
    p = (np.asarray(pred, dtype=np.float64) + pen).reshape(s, -1)
    ks = (t > 0).sum(axis=1)
    true_top = [np.argsort(-t[i], kind="stable")[: ks[i]] for i in range(s)]
    pred_top = [np.argsort(-p[i], kind="stable")[: ks[i]] for i in range(s)]
    return true_top, pred_top


def recall_at_k(y: np.ndarray, pred: np.ndarray, region: np.ndarray) -> float:
    """Σ hits / Σ K × 100, where hits are cells in both top-K lists of a sample."""
    true_top, pred_top = _top_k(y, pred, region)
    total = sum(len(t) for t in true_top)
    if total == 0:
        return NAN
    hits = sum(len(np.intersect1d(t, p)) for t, p in zip(true_top, pred_top, strict=True))
    return float(hits / total * 100)


def _average_precision(truth: np.ndarray, ranked: np.ndarray) -> float:
    hit = np.isin(ranked, truth)
    if not hit.any():
        return 0.0
    precision = np.cumsum(hit) / np.arange(1, len(ranked) + 1)
    return float(precision[hit].sum() / len(truth))


def map_at_k(y: np.ndarray, pred: np.ndarray, region: np.ndarray) -> float:
    """Mean over samples of the average precision of the predicted top-K against the true top-K set.

    Samples without any risk (K = 0) score 0 and still count, as in GSNet.
    """
    true_top, pred_top = _top_k(y, pred, region)
    if not true_top:
        return NAN
    return float(np.mean([_average_precision(t, p) for t, p in zip(true_top, pred_top, strict=True)]))


def gsnet_metrics(
    y: np.ndarray,
    pred: np.ndarray,
    region: np.ndarray,
    hours: np.ndarray | None = None,
    rush_hours: Sequence[int] = (6, 7, 8, 15, 16, 17, 18),
) -> dict[str, float]:
    """RMSE, Recall@K (%) and MAP@K for all samples and, with ``hours``, for rush-hour samples.

    Args:
        y, pred: ``[S, H, N]`` real risk.
        region: ``[N]`` bool, the cells that count.
        hours: ``[S]`` hour of day of each sample's target (local time); None skips the rush-hour rows.
        rush_hours: hours of day counted as rush ("high-frequency") hours.
    """
    out = {
        "gsnet_rmse": gsnet_rmse(y, pred, region),
        "recall": recall_at_k(y, pred, region),
        "map": map_at_k(y, pred, region),
    }
    if hours is not None:
        rush = np.isin(np.asarray(hours), list(rush_hours))
        if rush.any():
            out |= {
                "rush_gsnet_rmse": gsnet_rmse(y[rush], pred[rush], region),
                "rush_recall": recall_at_k(y[rush], pred[rush], region),
                "rush_map": map_at_k(y[rush], pred[rush], region),
            }
    return out
