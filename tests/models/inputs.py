"""Shared test inputs: B=3, T_in=12, N=9 cells on a 3×3 grid, F = 1 value + tod + 7 dow, H=3."""

import numpy as np
import torch

T_IN, N, F, H, GRID = 12, 9, 9, 3, (3, 3)
QUANTILES = (0.1, 0.5, 0.9)


def grid_adjacency(rows: int, cols: int) -> np.ndarray:
    """4-neighbour 0/1 adjacency of a rows×cols grid, row-major cell order."""
    a = np.zeros((rows * cols, rows * cols))
    for r in range(rows):
        for c in range(cols):
            for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
                if 0 <= r + dr < rows and 0 <= c + dc < cols:
                    a[r * cols + c, (r + dr) * cols + c + dc] = 1.0
    return a


def make_x(batch: int, seed: int = 0, t: int = T_IN, n: int = N) -> torch.Tensor:
    """Scaled values in channel 0, time of day in [0, 1) in channel 1, day-of-week one-hots in 2..8."""
    g = torch.Generator().manual_seed(seed)
    value = torch.randn(batch, t, n, 1, generator=g)
    start = torch.rand(batch, 1, generator=g)
    tod = ((start + torch.arange(t) / 96) % 1.0)[:, :, None, None].expand(batch, t, n, 1)
    day = torch.randint(0, 7, (batch, 1), generator=g).expand(batch, t)
    dow = torch.nn.functional.one_hot(day, 7).float()[:, :, None].expand(batch, t, n, 7)
    return torch.cat([value, tod, dow], dim=-1).contiguous()  # [B, T, N, F]


def common_params(**overrides) -> dict:
    """The common params the training engine passes to every builder."""
    params = dict(
        num_nodes=N,
        in_features=F,
        input_len=T_IN,
        horizon=H,
        target_channel=0,
        adjacency=grid_adjacency(*GRID),
        grid=GRID,
        quantiles=None,
    )
    return params | overrides
