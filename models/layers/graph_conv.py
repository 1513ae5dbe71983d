"""A multi-support graph convolution on node features [B, N, C] (Kipf & Welling 2017, extended to K supports)."""

import torch
from torch import nn


class GraphConv(nn.Module):
    """out = W [x, A_1 x, ..., A_K x] + b: a self term plus one neighbourhood term per support.

    Args:
        c_in: input channels.
        c_out: output channels.
        num_supports: K, how many [N, N] matrices ``forward`` receives.
    """

    def __init__(self, c_in: int, c_out: int, num_supports: int) -> None:
        super().__init__()
        self.linear = nn.Linear(c_in * (1 + num_supports), c_out)

    def forward(self, x: torch.Tensor, supports: list[torch.Tensor]) -> torch.Tensor:
        """x [B, N, C_in], supports K × [N, N] → [B, N, C_out]."""
        return self.linear(torch.cat([x, *[a @ x for a in supports]], dim=-1))
