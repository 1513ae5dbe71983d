"""Plots logged with each run: forecast vs actual for a few nodes, a risk map, and the loss curve.

Figures are drawn with matplotlib's object API (no pyplot), so nothing changes the caller's backend.
"""

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib import font_manager, ft2font
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cityagent.hub.hub import lead_text


def forecast_plot(
    times: np.ndarray,
    y: np.ndarray,
    mask: np.ndarray,
    pred: np.ndarray,
    nodes: Sequence[str],
    path: str | Path,
    eval_mask: np.ndarray | None = None,
    **options: Any,
) -> Path:
    """Write ``forecast_figure`` (same arguments, ``options`` by name) to the PNG ``path``."""
    forecast_figure(times, y, mask, pred, nodes, eval_mask, **options).savefig(path, dpi=90)
    return Path(path)


def forecast_figure(
    times: np.ndarray,
    y: np.ndarray,
    mask: np.ndarray,
    pred: np.ndarray,
    nodes: Sequence[str],
    eval_mask: np.ndarray | None = None,
    max_nodes: int = 4,
    unit: str = "",
    leads: Sequence[float] | None = None,
    names: Sequence[str] | None = None,
    step_name: str = "step",
    days: float = 7,
) -> Figure:
    """Actual vs predicted over the split's last ``days`` for the ``max_nodes`` most variable evaluated nodes.

    Args:
        times: ``[S, H]`` target timestamps.
        y, mask: ``[S, H, N]`` targets and where they were observed.
        pred: ``[S, H, N]`` point forecast, or ``[S, H, N, Q]`` (the outer levels are shaded).
        nodes: the N node ids.
        eval_mask: ``[N]`` nodes that may be shown (default all).
        max_nodes: how many nodes to draw.
        unit: y-axis label.
        leads: minutes ahead of each horizon step, for the legend (``forecast 15 min ahead``); None counts
            ``step_name`` (``forecast 3 operating-hours slots ahead``, where the night has no slots).
        names: the N node names for the panel titles (default the ids).
        step_name: what one horizon step is, when ``leads`` is None.
        days: the newest span drawn; a longer split is cut to it, so an hour's detail stays readable.
    """
    n = y.shape[2]
    allowed = np.ones(n, dtype=bool) if eval_mask is None else np.asarray(eval_mask, dtype=bool)
    spread = np.where(allowed, np.nanstd(np.where(mask[:, 0], y[:, 0], np.nan), axis=0), -np.inf)
    picks = [int(i) for i in np.argsort(-np.nan_to_num(spread, nan=-np.inf))[:max_nodes]]
    first = pd.DatetimeIndex(times[:, 0])  # [S]; tz-aware Timestamps from a split, or datetime64
    recent = np.asarray(first >= first[-1] - pd.Timedelta(days=days))  # [S] samples of the newest days
    times, y, mask, pred = times[recent], y[recent], mask[recent], pred[recent]
    t = times[:, 0]
    point = pred if pred.ndim == 3 else pred[..., pred.shape[-1] // 2]
    steps = sorted({0, y.shape[1] - 1})
    fig = Figure(figsize=(10, 2.4 * len(picks)), layout="constrained")
    undrawn = False
    axes = fig.subplots(len(picks), 1, squeeze=False)[:, 0]
    for ax, i in zip(axes, picks, strict=True):
        actual = np.where(mask[:, 0, i], y[:, 0, i], np.nan)
        ax.plot(*broken_at_gaps(t, actual), color="black", lw=1.2, label="actual")
        for h in steps:
            ahead = lead_text(leads[h]) if leads is not None else f"{h + 1} {step_name}{'s' if h else ''}"
            ax.plot(*broken_at_gaps(times[:, h], point[:, h, i]), lw=1, label=f"forecast {ahead} ahead")
        if pred.ndim == 4:
            band = broken_at_gaps(t, pred[:, 0, i, 0], pred[:, 0, i, -1])
            ax.fill_between(*band, alpha=0.25, label="outer quantiles +1")
        node = str(nodes[i])
        name = str(names[i]) if names is not None else node
        font = font_for(name) if name != node else None
        if name != node and font is None:  # no installed font draws it (Chinese station names): the id, said why
            undrawn, title = True, node
        else:
            title = name if name == node else f"{name} ({node})"
        ax.set_title(title, fontsize=9, fontfamily=font)
        ax.set_ylabel(unit)
        if first.tz is not None:  # the city's clock, not UTC: a morning peak at 08:00
            locator = mdates.AutoDateLocator(tz=first.tz)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.AutoDateFormatter(locator, tz=first.tz))
    said = [f"the last {days:g} days of the test split"] if not recent.all() else []
    if undrawn:
        said.append("node ids: no installed font draws their names (install e.g. Noto Sans CJK)")
    if said:
        fig.suptitle("; ".join(said), fontsize=9)
    axes[0].legend(fontsize=7, loc="upper right")
    return fig


def broken_at_gaps(times: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(times, *values)`` with a NaN point in the middle of every gap wider than the series' step.

    Operating-hours hubs (metro 06:00–24:00) have no slots at night, and skipped windows leave holes; matplotlib
    would join the last point before such a gap to the first after it with a straight line, so the NaN breaks
    lines and bands there instead. The step is the smallest spacing of ``times`` (the hub's step on any split
    with two neighbouring samples).

    Args:
        times: ``[S]`` increasing timestamps, tz-aware Timestamps or datetime64.
        values: ``[S]`` series drawn against ``times``.
    """
    index = pd.DatetimeIndex(times).as_unit("ns")
    ns = index.asi8  # UTC nanoseconds, so a tz-aware index compares in absolute time
    spacing = np.diff(ns)
    positive = spacing[spacing > 0]
    gaps = np.flatnonzero(spacing > positive.min()) if positive.size else np.empty(0, dtype=np.int64)
    if not gaps.size:
        return (np.asarray(times), *values)
    at = gaps + 1  # each NaN point goes between the two samples around its gap
    x = pd.DatetimeIndex(np.insert(ns, at, ns[gaps] + spacing[gaps] // 2).view("M8[ns]"))
    x = x.tz_localize("UTC").tz_convert(index.tz) if index.tz is not None else x
    return (x.to_numpy(), *(np.insert(np.asarray(v, dtype=np.float64), at, np.nan) for v in values))


@functools.cache
def font_for(text: str) -> str | None:
    """A font family that draws every character of ``text`` (the default one first), or None if none installed
    does; matplotlib would draw empty boxes and warn once per glyph."""
    default = font_manager.findfont(font_manager.FontProperties())
    fonts = sorted({f.fname for f in font_manager.fontManager.ttflist if "LastResort" not in f.fname})
    for path in [default, *fonts]:  # matplotlib's Last Resort maps every character to a box
        try:
            charmap = ft2font.FT2Font(path).get_charmap()
        except (OSError, RuntimeError):  # a font file matplotlib cannot read
            continue
        if all(ord(c) in charmap for c in text):
            return font_manager.FontProperties(fname=path).get_name()
    return None


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
    loss_figure(history).savefig(path, dpi=90)
    return Path(path)


def loss_figure(history: Sequence[dict[str, float]]) -> Figure:
    """The figure ``loss_curve`` writes: whole-epoch ticks, laid out so no label is cut off."""
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.subplots()
    epochs = [r["epoch"] for r in history]
    for key in ("train_loss", "val_loss"):
        if any(key in r for r in history):
            ax.plot(epochs, [r.get(key, np.nan) for r in history], marker="o", label=key)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 0.2, 0.4, ... on 2 epochs
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (scaled space)")
    ax.legend()
    return fig
