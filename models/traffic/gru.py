"""GRU: one recurrent network shared by all nodes (Cho et al. 2014; the T-GCN paper's GRU baseline)."""

import torch
from torch import nn

from cityagent.models.checks import check_dropout, check_sizes
from cityagent.models.layers.quantile_head import QuantileOutput
from cityagent.models.registry import register


@register("gru", domain="traffic")
class GRUForecaster(nn.Module):
    """A GRU over each node's feature sequence, weights shared across nodes, linear head to the horizon.

    Args:
        in_features: F, input channels per node and step (all are used).
        horizon: H, steps ahead.
        quantiles: levels for a quantile forecast, or None.
        hidden_size: GRU units (default 64).
        num_layers: stacked GRU layers (default 1).
        dropout: dropout between GRU layers (used when num_layers > 1).
    """

    def __init__(
        self,
        in_features: int,
        horizon: int,
        quantiles: tuple[float, ...] | None = None,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_sizes("gru", hidden_size=hidden_size, num_layers=num_layers)
        dropout = check_dropout("gru", dropout)
        self.gru = nn.GRU(
            in_features, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )
        self.head = QuantileOutput(horizon, quantiles)
        self.proj = nn.Linear(hidden_size, self.head.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, N, F] → [B, H, N] or [B, H, N, Q]."""
        b, t, n, f = x.shape
        x = x.permute(0, 2, 1, 3).reshape(b * n, t, f)  # [B*N, T, F]
        _, h = self.gru(x)  # h [layers, B*N, hidden]
        y = self.proj(h[-1]).reshape(b, n, -1)  # [B, N, H*Q]
        return self.head(y)
