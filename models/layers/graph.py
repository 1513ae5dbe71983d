"""Adjacency normalisations, each as its paper states it, returned as float32 tensors for buffers."""

import numpy as np
import torch


def sym_norm_adjacency(adj: np.ndarray, self_loops: bool = True) -> torch.Tensor:
    """Â = D^-1/2 (A + I) D^-1/2 with D the row sums of A + I (Kipf & Welling 2017; T-GCN).

    Args:
        adj: [N, N] non-negative weights; a directed graph is used as given (row i aggregates from j).
        self_loops: add I before normalising.
    """
    a = np.asarray(adj, dtype=np.float64) + (np.eye(len(adj)) if self_loops else 0.0)
    deg = a.sum(1)
    d = np.where(deg > 0, deg, 1.0) ** -0.5  # isolated nodes keep zero rows instead of inf
    return torch.from_numpy(d[:, None] * a * d[None, :]).float()


def transition_matrix(adj: np.ndarray) -> torch.Tensor:
    """P = D^-1 A, the random-walk matrix of diffusion convolution (DCRNN; Graph WaveNet's ``asym_adj``)."""
    a = np.asarray(adj, dtype=np.float64)
    deg = a.sum(1)
    inv = np.where(deg > 0, 1.0 / np.where(deg > 0, deg, 1.0), 0.0)
    return torch.from_numpy(inv[:, None] * a).float()


def double_transition(adj: np.ndarray) -> torch.Tensor:
    """Forward and backward transition matrices stacked, [2, N, N] (Graph WaveNet 'doubletransition')."""
    a = np.asarray(adj, dtype=np.float64)
    return torch.stack([transition_matrix(a), transition_matrix(a.T)])
