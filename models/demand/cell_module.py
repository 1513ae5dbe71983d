"""A fitted ``gbrt_demand`` as a torch module: its cell features, bins, trees and baseline, for ONNX export.

``CellFeatures`` and ``GBRTDemand.predict`` stay the numpy reference that training uses; this module repeats
their arithmetic in float64 torch ops (gathers for the profile, comparisons for the bins), and the export checks
its forecasts against the fitted model's on sample windows before anything is written.
"""

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from cityagent.models.classical.binning import QuantileBins
from cityagent.models.classical.tree_module import TreeEnsemble
from cityagent.models.conformal import widen
from cityagent.models.demand.cell_features import SNAP, CellFeatures

if TYPE_CHECKING:
    from cityagent.models.demand.gbrt_demand import GBRTDemand


class CellFeaturesModule(nn.Module):
    """``CellFeatures.__call__`` and ``.baseline`` in torch (float64); the profile table is a buffer."""

    def __init__(self, f: CellFeatures) -> None:
        super().__init__()
        self.f = f
        self.n = f.num_nodes
        self.register_buffer("other", torch.as_tensor([c for c in range(f.in_features) if c != f.target_channel]))
        if f.neighbours is not None:
            self.register_buffer("neighbours", torch.as_tensor(f.neighbours, dtype=torch.float64))
        if f.profile is not None:
            self.register_buffer("table", torch.as_tensor(f.profile.table, dtype=torch.float64))
            self.eps = 0.1 * float(f.profile.table.mean()) + 1e-9  # as CellFeatures.levels

    def slots(self, x: torch.Tensor, shift: int = 0) -> torch.Tensor:
        p = self.f.profile
        step = torch.floor(x[:, :, 0, p.tod_channel] * p.steps_per_day + 0.5).to(torch.int64) + shift
        if getattr(p, "day_channel", None) is not None:
            day = torch.round(x[:, :, 0, p.day_channel]).to(torch.int64)
            return torch.remainder(day * p.steps_per_day + step, p.n_slots)
        out = torch.remainder(step, p.steps_per_day)
        if p.weekend_channel is not None:
            out = out + p.steps_per_day * (x[:, :, 0, p.weekend_channel] > 0.5).to(torch.int64)
        return out

    def hm(self, v: torch.Tensor) -> torch.Tensor:
        return v[:, list(self.f.base)].mean(1)

    def levels(self, x: torch.Tensor, v: torch.Tensor) -> list[torch.Tensor]:
        f = self.f
        close, recent = list(f.closeness), list(f.closeness[-f.recent :])
        slots = self.slots(x)  # [S, T]
        usual = self.table[slots[:, close]]  # [S, T_c, N]
        ahead = self.table[self.slots(x[:, -1:], shift=1)[:, 0]]  # [S, N]
        gap = v[:, close] - usual
        eps = self.eps
        usual_recent = self.table[slots[:, recent]].sum(1)
        out = [
            ahead,
            gap[:, -1],
            gap.mean(1),
            ahead + gap.mean(1),
            ahead * (v[:, close].sum(1) + eps) / (usual.sum(1) + eps),
            ahead * (v[:, recent].sum(1) + eps) / (usual_recent + eps),
        ]
        if f.neighbours is not None:
            for num, den in ((v[:, close].sum(1), usual.sum(1)), (v[:, recent].sum(1), usual_recent)):
                pooled_num, pooled_den = num + num @ self.neighbours.T, den + den @ self.neighbours.T
                out.append(ahead * (pooled_num + eps) / (pooled_den + eps))
        if f.city:
            for num, den in ((v[:, close].sum(1), usual.sum(1)), (v[:, recent].sum(1), usual_recent)):
                out.append(ahead * num.sum(1, keepdim=True) / (den.sum(1, keepdim=True) + 1e-9))
        return out

    def baseline(self, x: torch.Tensor, v: torch.Tensor, levels: list[torch.Tensor] | None) -> torch.Tensor:
        f = self.f
        if levels is None or f.profile_weight == 0:
            return self.hm(v)
        shock = levels[-1] if f.city else levels[7] if f.neighbours is not None else levels[5]
        return f.profile_weight * shock + (1 - f.profile_weight) * self.hm(v)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [S, T, N, F]`` (float64) → features ``[S*N, width]`` and baseline ``[S, N]``."""
        f, s = self.f, x.shape[0]
        v = x[..., f.target_channel]
        last = v[:, -1]
        cols = [v.transpose(1, 2), self.hm(v).unsqueeze(-1)]
        cols += [v[:, list(g)].mean(1).unsqueeze(-1) for g in (f.closeness, f.period, f.trend) if g]
        cols += [(last - v[:, g[-1]]).unsqueeze(-1) for g in (f.period, f.trend) if g]
        if f.neighbours is not None:
            nb = torch.einsum("nm,stm->snt", self.neighbours, v[:, list(f.base)])
            cols += [nb, nb.mean(-1, keepdim=True)]
        levels = self.levels(x, v) if f.profile is not None else None
        cols += [lv.unsqueeze(-1) for lv in levels or []]
        cols.append(x[:, -1].index_select(-1, self.other))
        cols.append(torch.arange(self.n, dtype=torch.float64).view(1, self.n, 1).expand(s, self.n, 1))
        feats = torch.round(torch.cat(cols, -1).reshape(s * self.n, -1) * SNAP) / SNAP  # as cell_features.snap
        return feats, self.baseline(x, v, levels)


class BinCodes(nn.Module):
    """``QuantileBins.codes`` in torch: a value's code is how many of its column's thresholds lie below it."""

    def __init__(self, bins: QuantileBins) -> None:
        super().__init__()
        self.columns = []
        for j, t in enumerate(bins.thresholds or []):
            if t is not None:
                self.register_buffer(f"t{j}", torch.as_tensor(np.asarray(t), dtype=torch.float64))
                self.columns.append(j)
        self.width = len(bins.thresholds or [])

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        cols = list(feats.unbind(1))
        for j in self.columns:
            v = cols[j]
            code = (v.unsqueeze(1) > getattr(self, f"t{j}")).sum(1).to(torch.float64)
            cols[j] = torch.where(torch.isnan(v), v, code)
        return torch.stack(cols, 1)


class GBRTDemandModule(nn.Module):
    """``GBRTDemand.predict`` in torch: features (and bin codes), the mean of each step's (and level's) seeds, plus
    the baseline (times it, for ``loss="poisson"``); quantile levels sorted as ``predict`` sorts them."""

    def __init__(self, model: "GBRTDemand") -> None:
        super().__init__()
        self.features = CellFeaturesModule(model.features)
        bins = getattr(model, "bins", None)
        self.codes = BinCodes(bins) if bins is not None else None
        self.trees = nn.ModuleList(
            nn.ModuleList(nn.ModuleList(TreeEnsemble(e) for e in per_seed) for per_seed in per_level)
            for per_level in model.step_estimators()
        )
        levels = getattr(model, "quantiles", None) or ()
        self.n, self.sort, self.widen = model.features.num_nodes, bool(levels), len(levels) > 1
        margin = getattr(model, "margin", np.zeros(model.horizon))  # the conformal margin per step
        self.register_buffer("margin", torch.as_tensor(np.asarray(margin), dtype=torch.float64))
        # loss="poisson": the trees give a factor of the baseline (floored), not a residual
        self.floor = float(getattr(model, "floor", 0.0)) if getattr(model, "loss", "") == "poisson" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        feats, base = self.features(x)
        if self.codes is not None:
            feats = self.codes(feats)
        out = torch.stack(
            [
                torch.stack([torch.stack([t(feats) for t in seeds], 0).mean(0) for seeds in levels], -1)
                for levels in self.trees
            ],
            1,
        )  # [S*N, H, Q]
        out = out.reshape(x.shape[0], self.n, len(self.trees), -1).permute(0, 2, 1, 3)  # [S, H, N, Q]
        base = base.view(base.shape[0], 1, self.n, 1)
        out = out + base if self.floor is None else out * base.clamp_min(self.floor)
        if not self.sort:
            return out[..., 0]
        return widen(out, self.margin) if self.widen else out.sort(-1).values
