"""Accident-risk model inspired by GSNet: Wang et al., "GSNet: Learning Spatial-Temporal Correlations from
Geographical and Semantic Aspects for Traffic Accident Risk Forecasting", AAAI 2021. A geographic branch
(CNN per frame over the grid, then a GRU over frames) and a semantic branch (GCN per frame over the
task's graph, then a GRU), fused by a learned gate; a simplified variant without GSNet's attention."""

import numpy as np
import torch
from torch import nn

from cityagent.models.checks import check_dropout, check_sizes
from cityagent.models.layers.graph import sym_norm_adjacency
from cityagent.models.layers.graph_conv import GraphConv
from cityagent.models.layers.quantile_head import QuantileOutput
from cityagent.models.params import needs_grid
from cityagent.models.registry import register


@register("risk_conv", domain="risk")
class RiskConv(nn.Module):
    """Two-branch spatio-temporal risk net over a grid of cells (row-major). The output is linear in
    scaled space, so a zero risk is just a value the head can reach; the loss weighting is the engine's.

    Args:
        num_nodes: N = rows × cols.
        in_features: F; every channel is used (risk, calendar, weather, flows).
        horizon: H, steps ahead.
        grid: (rows, cols), required.
        adjacency: [N, N] semantic graph (e.g. GSNet's road/risk similarity over cells), normalised as
            Â = D^-1/2 (A + I) D^-1/2; None drops the semantic branch.
        quantiles: levels for a quantile forecast, or None.
        channels: CNN and GCN width (32).
        conv_layers: 3×3 conv layers per frame (2).
        hidden_size: GRU units of each branch (32).
        dropout: dropout before the head (0.1).
    """

    def __init__(
        self,
        num_nodes: int,
        in_features: int,
        horizon: int,
        grid: tuple[int, int] | None = None,
        adjacency: np.ndarray | None = None,
        quantiles: tuple[float, ...] | None = None,
        channels: int = 32,
        conv_layers: int = 2,
        hidden_size: int = 32,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if grid is None:
            raise needs_grid("risk_conv")
        # conv_layers 0 would feed F channels to a GRU built for `channels`
        check_sizes("risk_conv", channels=channels, conv_layers=conv_layers, hidden_size=hidden_size)
        dropout = check_dropout("risk_conv", dropout)
        self.grid = grid
        convs: list[nn.Module] = []
        for i in range(conv_layers):
            convs += [nn.Conv2d(in_features if i == 0 else channels, channels, 3, padding=1), nn.ReLU()]
        self.geo_cnn = nn.Sequential(*convs)
        self.geo_gru = nn.GRU(channels, hidden_size, batch_first=True)
        self.semantic = adjacency is not None
        if self.semantic:
            self.register_buffer("laplacian", sym_norm_adjacency(adjacency))
            self.sem_gcn = nn.ModuleList([GraphConv(in_features, channels, 1), GraphConv(channels, channels, 1)])
            self.sem_gru = nn.GRU(channels, hidden_size, batch_first=True)
            self.gate = nn.Linear(2 * hidden_size, hidden_size)
        self.head = QuantileOutput(horizon, quantiles)
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, self.head.out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, N, F] → [B, H, N] or [B, H, N, Q]."""
        b, t, n, f = x.shape
        z = self.geo_cnn(x.permute(0, 1, 3, 2).reshape(b * t, f, *self.grid))  # [B*T, C, rows, cols]
        z = z.reshape(b, t, -1, n).permute(0, 3, 1, 2).reshape(b * n, t, -1)  # [B*N, T, C]
        h = self.geo_gru(z)[1][-1]  # [B*N, hidden]
        if self.semantic:
            s = x.reshape(b * t, n, f)  # [B*T, N, F]
            for gcn in self.sem_gcn:
                s = torch.relu(gcn(s, [self.laplacian]))  # [B*T, N, C]
            s = s.reshape(b, t, n, -1).transpose(1, 2).reshape(b * n, t, -1)  # [B*N, T, C]
            hs = self.sem_gru(s)[1][-1]  # [B*N, hidden]
            g = torch.sigmoid(self.gate(torch.cat([h, hs], -1)))
            h = g * h + (1.0 - g) * hs
        return self.head(self.out(h).reshape(b, n, -1))  # [B, N, H*Q] → contract shape
