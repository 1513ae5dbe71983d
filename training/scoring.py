"""Which metrics a task is scored with: masked point metrics always, T-GCN's for its protocol, GSNet's for risk."""

from collections.abc import Sequence

import numpy as np

from cityagent.hub.protocols import TaskData
from cityagent.hub.windows import Split
from cityagent.training.metrics import median_level, per_horizon, point_metrics, quantile_metrics, tgcn_metrics
from cityagent.training.risk_metrics import gsnet_metrics

RUSH_HOURS = (6, 7, 8, 15, 16, 17, 18)


def score(
    task: TaskData, split: Split, pred: np.ndarray, domain: str, quantiles: Sequence[float] | None = None
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Metrics of ``pred`` on ``split`` in real units, on the task's evaluated nodes only.

    Args:
        task: gives ``eval_mask`` (nodes that count), the protocol and risk facts (rush hours).
        split: the windows ``pred`` belongs to, in order.
        pred: ``[S, H, N]`` or ``[S, H, N, Q]`` real-unit predictions.
        domain: ``traffic``, ``demand`` or ``risk``; risk adds GSNet's RMSE / Recall@K / MAP@K.
        quantiles: the levels of ``pred``'s last axis, if any.

    Returns:
        ``(metrics, rows)``: flat ``{name: value}`` (``mae``, ``rmse``, ``mape``, ``mae_h1``, ...) and one row
        per horizon step.
    """
    _, y, observed = split.arrays()  # [S, H, N]
    point = pred[..., median_level(quantiles)] if quantiles else pred
    if point.shape != y.shape:
        raise ValueError(f"predictions {point.shape} do not match the {len(split)} windows' targets {y.shape}")
    mask = observed & np.asarray(task.eval_mask, dtype=bool)[None, None, :]
    metrics = point_metrics(y, point, mask)
    rows = per_horizon(y, point, mask)
    for row in rows:
        metrics |= {f"{k}_h{row['horizon']}": v for k, v in row.items() if k != "horizon"}
    if task.protocol == "tgcn":
        metrics |= {f"tgcn_{k}": v for k, v in tgcn_metrics(y, point, mask).items()}
    if domain == "risk":
        hours = split.ts.hour.to_numpy()  # local hour of each sample's first target
        rush = task.extra.get("rush_hours", RUSH_HOURS)
        metrics |= gsnet_metrics(y, np.where(observed, point, 0.0), task.eval_mask, hours, rush)
    if quantiles:
        metrics |= quantile_metrics(y, pred, quantiles, mask)
    return metrics, rows
