"""Self-learned adjacency softmax(ReLU(E1 E2)) from node embeddings (Wu et al., IJCAI 2019, Graph WaveNet)."""

import torch
from torch import nn


class AdaptiveAdjacency(nn.Module):
    """A learned [N, N] row-stochastic matrix; needs no graph, so it also covers unknown dependencies.

    Args:
        num_nodes: N.
        dim: embedding size of the source and target node vectors (10 in the paper).
    """

    def __init__(self, num_nodes: int, dim: int = 10) -> None:
        super().__init__()
        self.source = nn.Parameter(torch.randn(num_nodes, dim) * 0.1)
        self.target = nn.Parameter(torch.randn(dim, num_nodes) * 0.1)

    def forward(self) -> torch.Tensor:
        """→ [N, N], rows sum to 1."""
        return torch.softmax(torch.relu(self.source @ self.target), dim=1)
