"""Graph WaveNet: Wu et al., "Graph WaveNet for Deep Spatial-Temporal Graph Modeling", IJCAI 2019.
Dilated gated TCN layers interleaved with diffusion convolution over the given and a learned adjacency."""

import numpy as np
import torch
from torch import nn

from cityagent.errors import ConfigError
from cityagent.models.checks import check_dropout, check_flag, check_size, check_sizes
from cityagent.models.layers.adaptive_adjacency import AdaptiveAdjacency
from cityagent.models.layers.diffusion_conv import DiffusionConv
from cityagent.models.layers.graph import double_transition
from cityagent.models.layers.quantile_head import QuantileOutput
from cityagent.models.registry import register


@register("gwnet", domain="traffic")
class GraphWaveNet(nn.Module):
    """Graph WaveNet, small by default (the paper: 4 blocks × 2 layers, 32/32/256/512 channels).

    Args:
        num_nodes: N.
        in_features: F, all channels are used (the paper feeds speed and time of day).
        input_len: T_in; left-padded with zeros up to the receptive field when shorter.
        horizon: H, steps ahead, all emitted at once by the last 1×1 conv.
        adjacency: [N, N] raw weights → forward and backward transition supports; None = adaptive only.
        quantiles: levels for a quantile forecast, or None.
        residual_channels, dilation_channels, skip_channels, end_channels: widths (16/16/64/128).
        blocks, layers_per_block: dilations 1, 2, 4, … restart in each block (2 × 2).
        kernel_size: temporal kernel (2).
        order: diffusion steps per support (2).
        adaptive: add the self-learned adjacency; adaptive_dim is its embedding size (10).
        dropout: dropout after each graph convolution (0.3).
    """

    def __init__(
        self,
        num_nodes: int,
        in_features: int,
        input_len: int,
        horizon: int,
        adjacency: np.ndarray | None = None,
        quantiles: tuple[float, ...] | None = None,
        residual_channels: int = 16,
        dilation_channels: int = 16,
        skip_channels: int = 64,
        end_channels: int = 128,
        blocks: int = 2,
        layers_per_block: int = 2,
        kernel_size: int = 2,
        order: int = 2,
        adaptive: bool = True,
        adaptive_dim: int = 10,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        check_sizes(
            "gwnet",
            residual_channels=residual_channels,
            dilation_channels=dilation_channels,
            skip_channels=skip_channels,
            end_channels=end_channels,
            blocks=blocks,
            layers_per_block=layers_per_block,
            order=order,
            adaptive_dim=adaptive_dim,
        )
        check_size("gwnet", "kernel_size", kernel_size, 2, " (at 1 the model sees only the last input step)")
        if blocks * layers_per_block < 2:  # the last layer only feeds the skip path: one layer has no graph conv
            raise ConfigError(
                "gwnet needs blocks × layers_per_block ≥ 2 (its last layer has no graph convolution), got "
                f"{blocks} × {layers_per_block}; raise model.params.blocks or layers_per_block."
            )
        adaptive, dropout = check_flag("gwnet", "adaptive", adaptive), check_dropout("gwnet", dropout)
        if adjacency is None and not adaptive:
            raise ConfigError("gwnet needs an adjacency or adaptive=True; it has no graph to convolve over.")
        self.register_buffer("supports", double_transition(adjacency) if adjacency is not None else torch.empty(0))
        self.adaptive = AdaptiveAdjacency(num_nodes, adaptive_dim) if adaptive else None
        n_supports = (2 if adjacency is not None else 0) + (1 if adaptive else 0)
        dilations = [2**i for i in range(layers_per_block)] * blocks
        self.pad = max(0, 1 + (kernel_size - 1) * sum(dilations) - input_len)  # up to the receptive field
        self.start = nn.Conv2d(in_features, residual_channels, kernel_size=1)
        conv = dict(kernel_size=(1, kernel_size))
        self.filters = nn.ModuleList(
            nn.Conv2d(residual_channels, dilation_channels, dilation=(1, d), **conv) for d in dilations
        )
        self.gates = nn.ModuleList(
            nn.Conv2d(residual_channels, dilation_channels, dilation=(1, d), **conv) for d in dilations
        )
        self.skips = nn.ModuleList(nn.Conv2d(dilation_channels, skip_channels, 1) for _ in dilations)
        # the last layer only feeds the skip path, so it has no graph conv (the reference code computes a dead one)
        self.gcns = nn.ModuleList(
            DiffusionConv(dilation_channels, residual_channels, n_supports, order, dropout) for _ in dilations[1:]
        )
        self.norms = nn.ModuleList(nn.BatchNorm2d(residual_channels) for _ in dilations[1:])
        self.head = QuantileOutput(horizon, quantiles)
        self.end = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(skip_channels, end_channels, 1),
            nn.ReLU(),
            nn.Conv2d(end_channels, self.head.out_features, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, N, F] → [B, H, N] or [B, H, N, Q]."""
        x = nn.functional.pad(x.permute(0, 3, 2, 1), (self.pad, 0))  # [B, F, N, T']
        x = self.start(x)  # [B, C_res, N, T']
        supports = list(self.supports.unbind(0)) if self.supports.numel() else []
        if self.adaptive is not None:
            supports.append(self.adaptive())
        skip = None
        for i, (filt, gate, skip_conv) in enumerate(zip(self.filters, self.gates, self.skips, strict=True)):
            res = x
            x = torch.tanh(filt(res)) * torch.sigmoid(gate(res))  # gated TCN, time shrinks by the dilation
            s = skip_conv(x)
            skip = s if skip is None else s + skip[..., -s.shape[3] :]
            if i < len(self.gcns):
                x = self.norms[i](self.gcns[i](x, supports) + res[..., -x.shape[3] :])
        y = self.end(skip[..., -1:])  # [B, H*Q, N, 1]
        return self.head(y[..., 0].transpose(1, 2))  # [B, N, H*Q] → contract shape
