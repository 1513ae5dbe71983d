"""Plots logged with each run: forecast vs actual for a few nodes, a risk map, and the loss curve.

Figures are drawn with matplotlib's object API (no pyplot), so nothing changes the caller's backend.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cityagent.hub.hub import lead_text


def forecast_plot(
    times: np.ndarray,
    y: np.ndarray,
    mask: np.ndarray,
    pred: np.ndarray,
    nodes: Sequence[str],
    path: str | Path,
    eval_mask: np.ndarray | None = None,
    max_nodes: int = 4,
    unit: str = "",
    leads: Sequence[float] | None = None,
) -> Path:
    """Actual vs predicted over the split for the ``max_nodes`` most variable evaluated nodes.

    Args:
        times: ``[S, H]`` target timestamps.
        y, mask: ``[S, H, N]`` targets and where they were observed.
        pred: ``[S, H, N]`` point forecast, or ``[S, H, N, Q]`` (the outer levels are shaded).
        nodes: the N node ids.
        path: PNG to write.
        eval_mask: ``[N]`` nodes that may be shown (default all).
        max_nodes: how many nodes to draw.
        unit: y-axis label.
        leads: minutes ahead of each horizon step, for the legend (``forecast 15 min ahead``; default: steps).
    """
    n = y.shape[2]
    allowed = np.ones(n, dtype=bool) if eval_mask is None else np.asarray(eval_mask, dtype=bool)
    spread = np.where(allowed, np.nanstd(np.where(mask[:, 0], y[:, 0], np.nan), axis=0), -np.inf)
    picks = [int(i) for i in np.argsort(-np.nan_to_num(spread, nan=-np.inf))[:max_nodes]]
    point = pred if pred.ndim == 3 else pred[..., pred.shape[-1] // 2]
    steps = sorted({0, y.shape[1] - 1})
    fig = Figure(figsize=(10, 2.4 * len(picks)))
    axes = fig.subplots(len(picks), 1, squeeze=False, gridspec_kw={"hspace": 0.45})[:, 0]
    for ax, i in zip(axes, picks, strict=True):
        t = times[:, 0]
        ax.plot(t, np.where(mask[:, 0, i], y[:, 0, i], np.nan), color="black", lw=1.2, label="actual")
        for h in steps:
            ahead = lead_text(leads[h]) if leads is not None else f"{h + 1} steps"
            ax.plot(times[:, h], point[:, h, i], lw=1, label=f"forecast {ahead} ahead")
        if pred.ndim == 4:
            ax.fill_between(t, pred[:, 0, i, 0], pred[:, 0, i, -1], alpha=0.25, label="outer quantiles +1")
        ax.set_title(f"node {nodes[i]}", fontsize=9)
        ax.set_ylabel(unit)
    axes[0].legend(fontsize=7, loc="upper right")
    fig.savefig(path, dpi=90)
    return Path(path)


def risk_map(
    y: np.ndarray, pred: np.ndarray, grid: Sequence[int], path: str | Path, eval_mask: np.ndarray | None = None
) -> Path:
    """Mean actual and predicted risk per cell over the split, as two grid heatmaps (evaluated cells outlined).

    Args:
        y, pred: ``[S, H, N]`` real risk (point forecast), N = rows × cols in row-major order.
        grid: ``(rows, cols)``.
        path: PNG to write.
        eval_mask: ``[N]`` cells that count in the metrics.
    """
    rows, cols = int(grid[0]), int(grid[1])
    maps = [a.mean(axis=(0, 1)).reshape(rows, cols) for a in (y, pred)]
    vmax = max(float(m.max()) for m in maps) or 1.0
    fig = Figure(figsize=(9, 4))
    axes = fig.subplots(1, 2)
    for ax, m, title in zip(axes, maps, ("actual mean risk", "predicted mean risk"), strict=True):
        im = ax.imshow(m, cmap="RdPu", vmin=0, vmax=vmax)
        if eval_mask is not None:
            r, c = np.nonzero(np.asarray(eval_mask, dtype=bool).reshape(rows, cols))
            ax.scatter(c, r, s=6, marker="s", facecolors="none", edgecolors="teal", linewidths=0.5)
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.savefig(path, dpi=90)
    return Path(path)


def loss_curve(history: Sequence[dict[str, float]], path: str | Path) -> Path | None:
    """Training and validation loss per epoch; None when there is no history (untrained baselines)."""
    if not history:
        return None
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    epochs = [r["epoch"] for r in history]
    for key in ("train_loss", "val_loss"):
        if any(key in r for r in history):
            ax.plot(epochs, [r.get(key, np.nan) for r in history], marker="o", label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (scaled space)")
    ax.legend()
    fig.savefig(path, dpi=90)
    return Path(path)
