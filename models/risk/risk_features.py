"""Per cell-hour features for tree models of accident risk on a GSNet-layout window.

A window ``x [S, T, N, F]`` holds ``weeks`` same-hour-of-previous-weeks frames, then the recent hours; channel
``hour_channel .. +24`` is the one-hot hour of day and ``dow_channel .. +7`` the one-hot weekday (GSNet layout:
1 and 25). The frame one week before the target has the target's hour and weekday.

Per-cell rates (mean risk, share of hours with risk, by hour of day and of week) are target encodings learned
from training targets; for the training rows they come from the other time folds (out-of-fold), because a tree
fed its own label's share of an average learns to read the label back.
"""

from dataclasses import dataclass

import numpy as np

DAY, WEEK = 24, 168


@dataclass(frozen=True)
class Layout:
    """Where things are in a window: frame with the target's hour of week, calendar and flow channels."""

    week_frame: int = 3
    weeks: int = 4
    hour_channel: int = 1
    dow_channel: int = 25
    holiday_channel: int | None = 32
    temperature_channel: int | None = 33
    weather_channels: tuple[int, int] | None = (34, 39)
    flow_channels: tuple[int, ...] = (39, 40)


def hour_of_week(x: np.ndarray, lay: Layout) -> np.ndarray:
    """x [S, T, N, F] → [S] target hour of week (0 = Monday 00:00), read from the week-prior frame."""
    f = x[:, lay.week_frame, 0]
    hour = f[:, lay.hour_channel : lay.hour_channel + DAY].argmax(1)
    return f[:, lay.dow_channel : lay.dow_channel + 7].argmax(1) * DAY + hour


def box_sum(a: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """a [..., N] on a row-major grid → sum over each cell's 8 grid neighbours (self excluded), [..., N]."""
    rows, cols = grid
    g = a.reshape(*a.shape[:-1], rows, cols)
    p = np.pad(g, [(0, 0)] * (g.ndim - 2) + [(1, 1), (1, 1)])
    s = sum(p[..., i : i + rows, j : j + cols] for i in range(3) for j in range(3)) - g
    return s.reshape(a.shape)


class CellRates:
    """Per-cell target encodings from training windows: overall, by hour of day and by hour of week.

    Sparse groups shrink towards the cell's overall rate (``prior`` pseudo-counts).
    """

    def __init__(self, how: np.ndarray, y: np.ndarray, prior_day: float = 5.0, prior_week: float = 2.0) -> None:
        """how [S] hour of week of each target; y [S, N] risk (any units)."""
        pos = (y > 0).astype(np.float64)
        self.n = float(len(y))
        self.mean, self.rate = y.sum(0) / self.n, pos.sum(0) / self.n  # [N]
        self.prior_day, self.prior_week = prior_day, prior_week
        self.n_week = np.bincount(how, minlength=WEEK).astype(np.float64)  # [168]
        self.sum_week = np.zeros((WEEK, y.shape[1]))
        np.add.at(self.sum_week, how, y)
        self.n_day = np.bincount(how % DAY, minlength=DAY).astype(np.float64)
        self.sum_day = np.zeros((DAY, y.shape[1]))
        np.add.at(self.sum_day, how % DAY, y)
        self.pos_day = np.zeros((DAY, y.shape[1]))
        np.add.at(self.pos_day, how % DAY, pos)

    def features(self, how: np.ndarray) -> np.ndarray:
        """how [S] → [S, N, 5]: mean, rate, hour-of-week mean, hour-of-day mean and hour-of-day rate."""
        hod = how % DAY
        nw, nd = self.n_week[how][:, None], self.n_day[hod][:, None]
        week = (self.sum_week[how] + self.prior_week * self.mean) / (nw + self.prior_week)
        day = (self.sum_day[hod] + self.prior_day * self.mean) / (nd + self.prior_day)
        day_rate = (self.pos_day[hod] + self.prior_day * self.rate) / (nd + self.prior_day)
        s = len(how)
        const = [np.broadcast_to(v[None], (s, len(v))) for v in (self.mean, self.rate)]
        return np.stack([*const, week, day, day_rate], -1)


def window_features(
    x: np.ndarray,
    rates: CellRates,
    lay: Layout,
    grid: tuple[int, int],
    target_channel: int = 0,
    adjacency: np.ndarray | None = None,
) -> np.ndarray:
    """x [S, T, N, F] → [S, N, D] features of each target cell-hour.

    Risk of every frame, weekly and recent sums (own cell, grid neighbours and graph neighbours), flows of the
    last hour, recent and weekly means, the cell rates, calendar and weather of the last hour, and the cell's
    row and column.
    """
    s, _, n, _ = x.shape
    r = x[..., target_channel]  # [S, T, N]
    weekly, recent = r[:, : lay.weeks].sum(1), r[:, lay.weeks :].sum(1)  # [S, N]
    how = hour_of_week(x, lay)
    cell = rates.features(how)  # [S, N, 5]
    cols = [r.transpose(0, 2, 1), weekly[..., None], recent[..., None]]
    cols += [box_sum(weekly, grid)[..., None], box_sum(recent, grid)[..., None], box_sum(cell[..., 3], grid)[..., None]]
    if adjacency is not None:
        a = adjacency / np.maximum(adjacency.sum(1, keepdims=True), 1e-12)  # row-normalised graph mean
        cols += [(weekly @ a.T)[..., None], (recent @ a.T)[..., None], (cell[..., 3] @ a.T)[..., None]]
    flows = list(lay.flow_channels)
    if flows:
        fl = x[..., flows]  # [S, T, N, k]
        cols += [fl[:, -1], fl[:, lay.weeks :].mean(1), fl[:, : lay.weeks].mean(1), fl[:, lay.week_frame]]
    cols.append(cell)
    last = x[:, -1, 0]  # [S, F], city-wide channels
    glob = [how % DAY, how // DAY]
    glob += [last[:, c] for c in (lay.holiday_channel, lay.temperature_channel) if c is not None]
    if lay.weather_channels is not None:
        glob.append(last[:, slice(*lay.weather_channels)].argmax(1))
    cols.append(np.broadcast_to(np.stack(glob, 1)[:, None], (s, n, len(glob))))
    rc = np.stack(np.divmod(np.arange(n), grid[1]), 1)  # [N, 2] row, col
    cols.append(np.broadcast_to(rc[None], (s, n, 2)))
    return np.concatenate(cols, -1).astype(np.float32)


def out_of_fold_features(
    x: np.ndarray,
    y: np.ndarray,
    lay: Layout,
    grid: tuple[int, int],
    folds: int,
    target_channel: int = 0,
    adjacency: np.ndarray | None = None,
) -> np.ndarray:
    """Training features whose cell rates come from the other ``folds`` contiguous time blocks. y [S, N]."""
    how = hour_of_week(x, lay)
    fold = np.arange(len(x)) * folds // len(x)
    out = []
    for f in range(folds):
        rest, part = fold != f, fold == f
        out.append(window_features(x[part], CellRates(how[rest], y[rest]), lay, grid, target_channel, adjacency))
    return np.concatenate(out)
