"""Last value (persistence): tomorrow looks like now. The floor every forecaster must beat."""

import torch
from torch import nn

from cityagent.models.registry import register


@register("last_value", domain="any", kind="baseline")
class LastValue(nn.Module):
    """Repeats the last observed target value over the horizon (and over all quantile levels).

    Args:
        horizon: H, steps ahead.
        target_channel: the channel to repeat.
        quantiles: levels; every level gets the same value (a degenerate but valid, sorted forecast).
    """

    def __init__(self, horizon: int, target_channel: int = 0, quantiles: tuple[float, ...] | None = None) -> None:
        super().__init__()
        self.horizon = horizon
        self.target_channel = target_channel
        self.num_quantiles = len(quantiles) if quantiles else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, N, F] → [B, H, N] or [B, H, N, Q]."""
        last = x[:, -1:, :, self.target_channel]  # [B, 1, N]
        out = last.repeat(1, self.horizon, 1)  # [B, H, N]
        if self.num_quantiles:
            out = out.unsqueeze(-1).repeat(1, 1, 1, self.num_quantiles)  # [B, H, N, Q]
        return out
