"""Diffusion graph convolution on [B, C, N, T] maps (Li et al. ICLR 2018; Graph WaveNet's ``gcn``)."""

import torch
from torch import nn


def node_mix(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """einsum('ncvl,vw->ncwl'): out[..., w, :] = Σ_v a[v, w] x[..., v, :], as two transposes and a MatMul."""
    return (x.transpose(2, 3) @ a).transpose(2, 3)


class DiffusionConv(nn.Module):
    """Concatenate x and its 1..K-step diffusions over each support, then a 1×1 conv.

    Args:
        c_in: input channels.
        c_out: output channels.
        num_supports: how many [N, N] matrices ``forward`` receives.
        order: K, diffusion steps per support (2 in Graph WaveNet).
        dropout: dropout on the output.
    """

    def __init__(self, c_in: int, c_out: int, num_supports: int, order: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.order = order
        self.mlp = nn.Conv2d(c_in * (1 + num_supports * order), c_out, kernel_size=1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, supports: list[torch.Tensor]) -> torch.Tensor:
        """x [B, C_in, N, T] → [B, C_out, N, T]."""
        out = [x]
        for a in supports:
            h = x
            for _ in range(self.order):
                h = node_mix(h, a)
                out.append(h)
        return self.dropout(self.mlp(torch.cat(out, dim=1)))  # cat: [B, C_in*(1+S*K), N, T]
