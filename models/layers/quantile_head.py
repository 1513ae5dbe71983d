"""Per-node output head: [B, N, H*Q] features → [B, H, N] or monotone quantiles [B, H, N, Q]."""

import torch
from torch import nn


class QuantileOutput(nn.Module):
    """Reshape a per-node regression output into the model contract, with non-crossing quantiles.

    With quantiles, the median-most level is predicted directly and the others are reached by adding
    (above) or subtracting (below) cumulative softplus gaps, so outputs are sorted by construction; one
    constant matrix does it, which keeps the ONNX graph to a Softplus, a Where and a MatMul.

    Args:
        horizon: H, steps ahead.
        quantiles: increasing levels in (0, 1) or None for a point forecast.
    """

    def __init__(self, horizon: int, quantiles: tuple[float, ...] | None = None) -> None:
        super().__init__()
        self.horizon = horizon
        self.quantiles = quantiles
        q = len(quantiles) if quantiles else 1
        self.out_features = horizon * q
        if quantiles:
            mid = min(range(q), key=lambda i: abs(quantiles[i] - 0.5))
            mix = torch.zeros(q, q)  # out[k] = sum_j s[j] * mix[j, k]
            mix[mid, :] = 1.0
            for k in range(q):
                if k > mid:
                    mix[mid + 1 : k + 1, k] = 1.0
                elif k < mid:
                    mix[k:mid, k] = -1.0
            is_mid = torch.zeros(q, dtype=torch.bool)
            is_mid[mid] = True
            self.register_buffer("mix", mix)
            self.register_buffer("is_mid", is_mid)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        """raw [B, N, H*Q] → [B, H, N] (point) or [B, H, N, Q] (quantiles)."""
        if not self.quantiles:
            return raw.transpose(1, 2)  # [B, H, N]
        raw = raw.reshape(raw.shape[0], raw.shape[1], self.horizon, -1)  # [B, N, H, Q]
        gaps = torch.where(self.is_mid, raw, nn.functional.softplus(raw))
        return (gaps @ self.mix).permute(0, 2, 1, 3)  # [B, H, N, Q]
