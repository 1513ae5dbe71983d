"""ST-ResNet: Zhang, Zheng & Qi, "Deep Spatio-Temporal Residual Networks for Citywide Crowd Flows
Prediction", AAAI 2017. Residual CNNs over closeness/period/trend frames, fused by learned weights."""

from collections.abc import Sequence

import torch
from torch import nn

from cityagent.models.checks import check_flag, check_sizes
from cityagent.models.demand.frame_groups import frame_groups
from cityagent.models.layers.quantile_head import QuantileOutput
from cityagent.models.params import needs_grid
from cityagent.models.registry import register


class ResUnit(nn.Module):
    """x + Conv(ReLU(Conv(ReLU(x)))), the paper's residual unit (3×3 convs, same padding)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


@register("st_resnet", domain="demand")
class STResNet(nn.Module):
    """ST-ResNet over a grid (nodes are cells in row-major order). Outputs are linear (no tanh): the
    inputs are scaled by the engine, not to [-1, 1].

    Args:
        num_nodes: N = rows × cols.
        in_features: F; every channel of a frame is a CNN input channel.
        input_len: T_in.
        horizon: H, steps ahead (H × Q output maps).
        grid: (rows, cols), required.
        quantiles: levels for a quantile forecast, or None.
        closeness_frames, period_frames, trend_frames: input time indices of each branch (see
            ``frame_groups``); default one closeness branch over the whole window.
        channels: conv width (64 in the paper; 32 here).
        residual_units: residual units per branch (the paper uses 2–12).
        external: add the external component, an MLP on the last frame's node-averaged features
            (calendar channels are the same in every cell, so this is the paper's metadata input).
        external_dim: its hidden size (10 in the paper).
    """

    def __init__(
        self,
        num_nodes: int,
        in_features: int,
        input_len: int,
        horizon: int,
        grid: tuple[int, int] | None = None,
        quantiles: tuple[float, ...] | None = None,
        closeness_frames: Sequence[int] | None = None,
        period_frames: Sequence[int] | None = None,
        trend_frames: Sequence[int] | None = None,
        channels: int = 32,
        residual_units: int = 2,
        external: bool = True,
        external_dim: int = 10,
    ) -> None:
        super().__init__()
        if grid is None:
            raise needs_grid("st_resnet", "; for stations use 'st_gcn_demand'")
        # residual_units 0 would leave two plain convolutions: not a ResNet
        check_sizes("st_resnet", channels=channels, residual_units=residual_units, external_dim=external_dim)
        external = check_flag("st_resnet", "external", external)
        self.grid = grid
        self.head = QuantileOutput(horizon, quantiles)
        out = self.head.out_features
        groups = frame_groups(input_len, closeness_frames, period_frames, trend_frames)
        for i, g in enumerate(groups):
            self.register_buffer(f"frames_{i}", torch.tensor(g, dtype=torch.long))
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(len(g) * in_features, channels, 3, padding=1),
                *[ResUnit(channels) for _ in range(residual_units)],
                nn.ReLU(),
                nn.Conv2d(channels, out, 3, padding=1),
            )
            for g in groups
        )
        self.fusion = nn.Parameter(torch.ones(len(groups), out, *grid))  # W_c, W_p, W_t (Hadamard weights)
        self.external = (
            nn.Sequential(nn.Linear(in_features, external_dim), nn.ReLU(), nn.Linear(external_dim, out * num_nodes))
            if external
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, N, F] → [B, H, N] or [B, H, N, Q]."""
        b, n = x.shape[0], x.shape[2]
        rows, cols = self.grid
        y = 0.0
        for i, branch in enumerate(self.branches):
            z = x.index_select(1, getattr(self, f"frames_{i}"))  # [B, T_g, N, F]
            z = z.permute(0, 1, 3, 2).reshape(b, -1, rows, cols)  # [B, T_g*F, rows, cols]
            y = y + self.fusion[i] * branch(z)  # [B, H*Q, rows, cols]
        y = y.reshape(b, -1, n)  # [B, H*Q, N]
        if self.external is not None:
            y = y + self.external(x[:, -1].mean(1)).reshape(b, -1, n)  # [B, F] → [B, H*Q, N]
        return self.head(y.transpose(1, 2))  # [B, N, H*Q] → contract shape
