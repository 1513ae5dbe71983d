"""Station demand GCN inspired by ST-MGCN: Geng et al., "Spatiotemporal Multi-Graph Convolution Network
for Ride-Hailing Demand Forecasting", AAAI 2019. Frame groups are encoded per node, then graph
convolutions over the given graph and a learned one (Wu et al. 2019) are fused; a simplified variant."""

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from cityagent.errors import ConfigError
from cityagent.models.checks import check_dropout, check_flag, check_sizes
from cityagent.models.demand.frame_groups import frame_groups
from cityagent.models.layers.adaptive_adjacency import AdaptiveAdjacency
from cityagent.models.layers.graph import sym_norm_adjacency
from cityagent.models.layers.graph_conv import GraphConv
from cityagent.models.layers.quantile_head import QuantileOutput
from cityagent.models.registry import register


@register("st_gcn_demand", domain="demand")
class STGCNDemand(nn.Module):
    """Per-node encoders of the closeness/period/trend frames, residual multi-support GCN layers, MLP head.

    Args:
        num_nodes: N (stations or cells).
        in_features: F; every channel of each chosen frame is used.
        input_len: T_in.
        horizon: H, steps ahead.
        adjacency: [N, N] raw weights, normalised as Â = D^-1/2 (A + I) D^-1/2; None = learned graph only.
        quantiles: levels for a quantile forecast, or None.
        closeness_frames, period_frames, trend_frames: input time indices of each group (default: one
            closeness group over the whole window).
        hidden_size: width of encoders and GCN layers (64).
        node_dim: node identity embedding size, also the learned graph's embedding size (16).
        num_layers: GCN layers (2).
        adaptive: add the learned adjacency as a second support.
        dropout: dropout after each GCN layer (0.1).
    """

    def __init__(
        self,
        num_nodes: int,
        in_features: int,
        input_len: int,
        horizon: int,
        adjacency: np.ndarray | None = None,
        quantiles: tuple[float, ...] | None = None,
        closeness_frames: Sequence[int] | None = None,
        period_frames: Sequence[int] | None = None,
        trend_frames: Sequence[int] | None = None,
        hidden_size: int = 64,
        node_dim: int = 16,
        num_layers: int = 2,
        adaptive: bool = True,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        # num_layers 0 would drop the graph altogether
        check_sizes("st_gcn_demand", hidden_size=hidden_size, node_dim=node_dim, num_layers=num_layers)
        adaptive = check_flag("st_gcn_demand", "adaptive", adaptive)
        dropout = check_dropout("st_gcn_demand", dropout)
        if adjacency is None and not adaptive:
            raise ConfigError("st_gcn_demand needs an adjacency or adaptive=True; it has no graph to convolve over.")
        groups = frame_groups(input_len, closeness_frames, period_frames, trend_frames)
        for i, g in enumerate(groups):
            self.register_buffer(f"frames_{i}", torch.tensor(g, dtype=torch.long))
        self.encoders = nn.ModuleList(nn.Linear(len(g) * in_features, hidden_size) for g in groups)
        self.node = nn.Parameter(torch.randn(num_nodes, node_dim) * 0.1)
        self.mix = nn.Linear(len(groups) * hidden_size + node_dim, hidden_size)
        self.register_buffer("fixed", sym_norm_adjacency(adjacency) if adjacency is not None else torch.empty(0))
        self.adaptive = AdaptiveAdjacency(num_nodes, node_dim) if adaptive else None
        n_supports = (adjacency is not None) + adaptive
        self.gcns = nn.ModuleList(GraphConv(hidden_size, hidden_size, n_supports) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.head = QuantileOutput(horizon, quantiles)
        self.out = nn.Sequential(nn.ReLU(), nn.Linear(hidden_size, self.head.out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, N, F] → [B, H, N] or [B, H, N, Q]."""
        b, n = x.shape[0], x.shape[2]
        parts = []
        for i, enc in enumerate(self.encoders):
            z = x.index_select(1, getattr(self, f"frames_{i}")).permute(0, 2, 1, 3)  # [B, N, T_g, F]
            parts.append(enc(z.reshape(b, n, -1)))  # [B, N, hidden]
        h = self.mix(torch.cat([*parts, self.node.unsqueeze(0).expand(b, -1, -1)], -1))  # [B, N, hidden]
        supports = [self.fixed] if self.fixed.numel() else []
        if self.adaptive is not None:
            supports.append(self.adaptive())
        for gcn in self.gcns:
            h = h + self.dropout(torch.relu(gcn(h, supports)))
        return self.head(self.out(h))  # [B, N, H*Q] → contract shape
