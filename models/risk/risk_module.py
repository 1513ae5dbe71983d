"""A fitted ``risk_gbrt`` as a torch module: its window features, cell rates, classifier and calibration, for ONNX.

``window_features`` and ``RiskGBRT.predict`` stay the numpy reference; this module repeats their arithmetic in
torch, summing frames in the same order (so the float32 features come out bit-identical and every split goes the
same way), and the export checks its forecasts against the fitted model's before anything is written.
"""

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from cityagent.models.classical.tree_module import TreeEnsemble
from cityagent.models.risk.risk_features import DAY, CellRates, Layout

if TYPE_CHECKING:
    from cityagent.models.risk.risk_gbrt import RiskGBRT


def ordered_sum(frames: list[torch.Tensor]) -> torch.Tensor:
    """Frames added one after the other, as numpy reduces a non-contiguous axis."""
    out = frames[0]
    for f in frames[1:]:
        out = out + f
    return out


class WindowFeatures(nn.Module):
    """``window_features(x, rates, ...)`` in torch: ``[S, T, N, F] -> [S, N, D]`` float32."""

    def __init__(
        self, rates: CellRates, lay: Layout, grid: tuple[int, int], target_channel: int, adjacency: np.ndarray | None
    ) -> None:
        super().__init__()
        self.lay, self.grid, self.target_channel = lay, tuple(grid), target_channel
        for name in ("mean", "rate", "n_week", "sum_week", "n_day", "sum_day", "pos_day"):
            self.register_buffer(name, torch.as_tensor(np.asarray(getattr(rates, name)), dtype=torch.float64))
        self.prior_day, self.prior_week = float(rates.prior_day), float(rates.prior_week)
        self.graph = adjacency is not None
        if adjacency is not None:
            a = adjacency / np.maximum(adjacency.sum(1, keepdims=True), 1e-12)
            self.register_buffer("adjacency_t", torch.as_tensor(np.ascontiguousarray(a.T), dtype=torch.float64))
        n = grid[0] * grid[1]
        self.register_buffer("rc", torch.as_tensor(np.stack(np.divmod(np.arange(n), grid[1]), 1), dtype=torch.float64))

    def hour_of_week(self, x: torch.Tensor) -> torch.Tensor:
        f = x[:, self.lay.week_frame, 0]
        hour = f[:, self.lay.hour_channel : self.lay.hour_channel + DAY].argmax(1)
        return f[:, self.lay.dow_channel : self.lay.dow_channel + 7].argmax(1) * DAY + hour

    def box_sum(self, a: torch.Tensor) -> torch.Tensor:
        rows, cols = self.grid
        g = a.reshape(a.shape[0], rows, cols)
        p = nn.functional.pad(g, (1, 1, 1, 1))
        s = ordered_sum([p[:, i : i + rows, j : j + cols] for i in range(3) for j in range(3)]) - g
        return s.reshape(a.shape)

    def cell_rates(self, how: torch.Tensor) -> torch.Tensor:
        hod = torch.remainder(how, DAY)
        nw, nd = self.n_week[how].unsqueeze(1), self.n_day[hod].unsqueeze(1)
        week = (self.sum_week[how] + self.prior_week * self.mean) / (nw + self.prior_week)
        day = (self.sum_day[hod] + self.prior_day * self.mean) / (nd + self.prior_day)
        day_rate = (self.pos_day[hod] + self.prior_day * self.rate) / (nd + self.prior_day)
        s = how.shape[0]
        const = [v.unsqueeze(0).expand(s, -1) for v in (self.mean, self.rate)]
        return torch.stack([*const, week, day, day_rate], -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lay, s, n = self.lay, x.shape[0], x.shape[2]
        r = x[..., self.target_channel]  # [S, T, N]
        t = r.shape[1]
        weekly = ordered_sum([r[:, i] for i in range(lay.weeks)])
        recent = ordered_sum([r[:, i] for i in range(lay.weeks, t)])
        how = self.hour_of_week(x)
        cell = self.cell_rates(how)  # [S, N, 5]
        cols = [r.transpose(1, 2), weekly.unsqueeze(-1), recent.unsqueeze(-1)]
        cols += [self.box_sum(weekly).unsqueeze(-1), self.box_sum(recent).unsqueeze(-1)]
        cols.append(self.box_sum(cell[..., 3]).unsqueeze(-1))
        if self.graph:
            cols += [(v @ self.adjacency_t).unsqueeze(-1) for v in (weekly, recent, cell[..., 3])]
        flows = list(lay.flow_channels)
        if flows:
            fl = x[..., flows]  # [S, T, N, k]
            week_mean = ordered_sum([fl[:, i] for i in range(lay.weeks)]) / lay.weeks
            recent_mean = ordered_sum([fl[:, i] for i in range(lay.weeks, t)]) / (t - lay.weeks)
            cols += [fl[:, -1], recent_mean, week_mean, fl[:, lay.week_frame]]
        cols.append(cell)
        last = x[:, -1, 0]  # [S, F]
        glob = [torch.remainder(how, DAY), torch.div(how, DAY, rounding_mode="floor")]
        glob = [g.to(torch.float64) for g in glob]
        glob += [last[:, c] for c in (lay.holiday_channel, lay.temperature_channel) if c is not None]
        if lay.weather_channels is not None:
            lo, hi = lay.weather_channels
            glob.append(last[:, lo:hi].argmax(1).to(torch.float64))
        cols.append(torch.stack(glob, 1).unsqueeze(1).expand(s, n, len(glob)))
        cols.append(self.rc.unsqueeze(0).expand(s, n, 2))
        return torch.cat(cols, -1).to(torch.float32)


class Calibration(nn.Module):
    """``MonotoneCalibrator.__call__`` in torch: ``np.interp`` over its knots plus the tie-breaking slope."""

    def __init__(self, knots_x: np.ndarray, knots_y: np.ndarray, slope: float) -> None:
        super().__init__()
        self.register_buffer("kx", torch.as_tensor(knots_x, dtype=torch.float64))
        self.register_buffer("ky", torch.as_tensor(knots_y, dtype=torch.float64))
        self.slope = float(slope)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        kx, ky, last = self.kx, self.ky, len(self.kx) - 1
        if last == 0:
            inner = self.ky[0].expand_as(s)
        else:
            j = ((s.unsqueeze(-1) >= kx).sum(-1) - 1).clamp(0, last - 1)  # kx[j] <= s < kx[j + 1]
            x0, x1, y0, y1 = kx[j], kx[j + 1], ky[j], ky[j + 1]
            inner = (y1 - y0) / (x1 - x0) * (s - x0) + y0
            inner = torch.where(
                s <= kx[0], ky[0].expand_as(s), torch.where(s >= kx[last], ky[last].expand_as(s), inner)
            )
        return inner + self.slope * (s - kx[0])


class RiskGBRTModule(nn.Module):
    """``RiskGBRT.predict`` in torch: ``[S, T, N, F] -> [S, 1, N]`` (scaled space)."""

    def __init__(self, model: "RiskGBRT") -> None:
        super().__init__()
        self.features = WindowFeatures(model.rates, model.layout, model.grid, model.target_channel, model.adjacency)
        self.trees = TreeEnsemble(model.estimator)
        cal = model.calibrator
        self.calibration = None if cal is None else Calibration(cal.knots_x, cal.knots_y, cal.slope)
        self.positive_mean = float(model.positive_mean)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        feats = self.features(x)  # [S, N, D] float32, as the numpy features
        s, n = feats.shape[0], feats.shape[1]
        p = self.trees(feats.reshape(s * n, -1)).reshape(s, n)
        out = self.calibration(p) if self.calibration is not None else p * self.positive_mean
        return out.unsqueeze(1)
