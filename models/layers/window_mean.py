"""Mean (or empirical quantiles) of chosen input frames of the target, repeated over the horizon."""

import torch
from torch import nn


class WindowMean(nn.Module):
    """The historical-average family: HA (traffic), HM (demand), risk HA. No parameters.

    With quantiles the output is the empirical quantile of the chosen frames (linear interpolation, as
    ``torch.quantile``), built from a sort and one constant matrix so ONNX export stays static.

    Args:
        horizon: H, steps ahead.
        frames: resolved input time indices to average.
        target_channel: the channel to average.
        quantiles: increasing levels in (0, 1) or None.
    """

    def __init__(
        self,
        horizon: int,
        frames: tuple[int, ...],
        target_channel: int = 0,
        quantiles: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        self.horizon = horizon
        self.target_channel = target_channel
        self.register_buffer("frames", torch.tensor(frames, dtype=torch.long))
        levels = quantiles or (0.5,)
        w = torch.zeros(len(frames), len(levels))  # sorted frames → quantile levels
        for k, q in enumerate(levels):
            pos = q * (len(frames) - 1)
            lo = int(pos)
            hi = min(lo + 1, len(frames) - 1)
            w[lo, k] += 1.0 - (pos - lo)
            w[hi, k] += pos - lo
        self.register_buffer("weights", w if quantiles else torch.full((len(frames), 1), 1.0 / len(frames)))
        self.quantiles = quantiles

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, N, F] → [B, H, N] or [B, H, N, Q]."""
        v = x[..., self.target_channel].index_select(1, self.frames)  # [B, T', N]
        if self.quantiles:
            v = torch.sort(v, dim=1).values
        out = (v.transpose(1, 2) @ self.weights).unsqueeze(1)  # [B, 1, N, Q']
        out = out.repeat(1, self.horizon, 1, 1)  # [B, H, N, Q']
        return out if self.quantiles else out[..., 0]
