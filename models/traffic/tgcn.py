"""T-GCN: Zhao et al., "T-GCN: A Temporal Graph Convolutional Network for Traffic Prediction",
IEEE T-ITS 21(9), 2020 (arXiv 2019). A GRU whose gates are graph convolutions."""

import numpy as np
import torch
from torch import nn

from cityagent.errors import ConfigError
from cityagent.models.checks import check_flag, check_size
from cityagent.models.layers.graph import sym_norm_adjacency
from cityagent.models.layers.quantile_head import QuantileOutput
from cityagent.models.registry import register


class TGCNCell(nn.Module):
    """u, r = σ(Â[x, h]W + b); c = tanh(Â[x, r⊙h]W_c + b_c); h' = u⊙h + (1 − u)⊙c (paper eqs. 3–6)."""

    def __init__(self, laplacian: torch.Tensor, in_features: int, hidden_size: int) -> None:
        super().__init__()
        self.register_buffer("laplacian", laplacian)  # Â, fixed
        self.gates = nn.Linear(in_features + hidden_size, 2 * hidden_size)
        self.candidate = nn.Linear(in_features + hidden_size, hidden_size)
        nn.init.constant_(self.gates.bias, 1.0)  # start by keeping the state, as the reference code does

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """x [B, N, F], h [B, N, hidden] → h' [B, N, hidden]."""
        ru = torch.sigmoid(self.gates(self.laplacian @ torch.cat([x, h], -1)))
        r, u = ru.chunk(2, dim=-1)
        c = torch.tanh(self.candidate(self.laplacian @ torch.cat([x, r * h], -1)))
        return u * h + (1.0 - u) * c


@register("tgcn", domain="traffic")
class TGCN(nn.Module):
    """T-GCN with Â = D^-1/2 (A + I) D^-1/2 as a fixed buffer, linear head from the last state.

    Args:
        num_nodes: N.
        in_features: F (all channels are used; the paper feeds the speed only, see ``target_only``).
        horizon: H, steps ahead.
        adjacency: [N, N] raw weights (required).
        target_channel: the channel fed when ``target_only``.
        quantiles: levels for a quantile forecast, or None.
        hidden_size: GCN-GRU units (the paper uses 64 on Los-loop, 100 on SZ-taxi).
        target_only: feed only the target channel, exactly as the paper.
    """

    def __init__(
        self,
        num_nodes: int,
        in_features: int,
        horizon: int,
        adjacency: np.ndarray | None = None,
        target_channel: int = 0,
        quantiles: tuple[float, ...] | None = None,
        hidden_size: int = 64,
        target_only: bool = False,
    ) -> None:
        super().__init__()
        if adjacency is None:
            raise ConfigError("tgcn needs the task's adjacency (an N×N road graph); use 'gru' or 'stid' without one.")
        self.hidden_size = check_size("tgcn", "hidden_size", hidden_size)
        target_only = check_flag("tgcn", "target_only", target_only)
        self.register_buffer("channels", torch.tensor([target_channel] if target_only else list(range(in_features))))
        self.cell = TGCNCell(sym_norm_adjacency(adjacency), len(self.channels), hidden_size)
        self.head = QuantileOutput(horizon, quantiles)
        self.proj = nn.Linear(hidden_size, self.head.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, N, F] → [B, H, N] or [B, H, N, Q]."""
        x = x.index_select(-1, self.channels)  # [B, T, N, F']
        h = x.new_zeros(x.shape[0], x.shape[2], self.hidden_size)  # [B, N, hidden]
        for x_t in x.unbind(1):  # T_in is fixed per model, so the trace unrolls it
            h = self.cell(x_t, h)
        return self.head(self.proj(h))  # [B, N, H*Q] → contract shape
