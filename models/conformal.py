"""Split-conformal calibration of a quantile interval (conformalised quantile regression, Romano et al. 2019).

A model's outermost quantile levels ``q_lo, q_hi`` should cover ``q_hi - q_lo`` of the targets, but trees and
networks trained on the pinball loss run narrow or wide. On windows the model did not fit, each target's
conformity score is how far it falls outside the interval (negative inside it); the margin per horizon step is the
``(q_hi - q_lo)(1 + 1/n)`` quantile of those scores. Moving the lowest level down and the highest up by the margin
(a negative margin narrows) gives nominal coverage on exchangeable data.
"""

import numpy as np
import torch

from cityagent.errors import ConfigError


def cqr_margin(
    pred: np.ndarray, y: np.ndarray, quantiles: tuple[float, ...], mask: np.ndarray | None = None
) -> np.ndarray:
    """``[H]`` margin per step, in the units of ``y``.

    Args:
        pred: ``[S, H, N, Q]`` predictions on held-out windows, levels ascending.
        y: ``[S, H, N]`` their targets.
        quantiles: the ``Q`` levels (at least two).
        mask: ``[S, H, N]`` (or broadcastable) targets that count: observed and evaluated.
    """
    if len(quantiles) < 2:
        raise ConfigError(f"a conformal margin needs an interval: ≥ 2 quantile levels, got {list(quantiles)}")
    pred, y = np.asarray(pred, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if pred.shape[:-1] != y.shape or pred.shape[-1] != len(quantiles):
        raise ValueError(f"predictions {pred.shape} do not match targets {y.shape} with {len(quantiles)} levels")
    keep = np.ones(y.shape, dtype=bool) if mask is None else np.broadcast_to(np.asarray(mask, dtype=bool), y.shape)
    outside = np.maximum(pred[..., 0] - y, y - pred[..., -1])  # [S, H, N]
    share = float(quantiles[-1] - quantiles[0])  # the interval's nominal coverage
    margin = np.zeros(y.shape[1])
    for h in range(y.shape[1]):
        score = outside[:, h][keep[:, h]]
        if score.size < 2:
            raise ConfigError(
                f"a conformal margin needs held-out targets: step {h + 1} has {score.size}; "
                "give the task a longer validation split"
            )
        margin[h] = np.quantile(score, min(1.0, share * (1 + 1 / score.size)), method="higher")
    return margin


def widen(pred: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """``pred [B, H, N, Q]`` with the lowest level moved down and the highest up by ``margin [H]``, levels
    re-sorted (a negative margin could cross the median)."""
    m = margin.to(pred.dtype).view(1, -1, 1, 1)
    return torch.cat([pred[..., :1] - m, pred[..., 1:-1], pred[..., -1:] + m], -1).sort(-1).values
