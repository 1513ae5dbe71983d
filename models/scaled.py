"""A model that speaks real units: input scaling and output un-scaling are part of the graph.

So the exported ONNX model is self-contained — clients send km/h, trips or risk and get the same back.
"""

import numpy as np
import torch
from torch import nn

from cityagent.models.conformal import widen


class ScaledModel(nn.Module):
    """``y = (net(x * x_scale + x_offset) - y_offset) / y_scale``, per feature for x, one channel for y.

    Args:
        net: a registry model taking scaled ``[B, T, N, F]`` and returning ``[B, H, N]`` (or ``[B, H, N, Q]``).
        x_scale, x_offset: ``[F]`` affine scaling of the input features (calendar features: 1 and 0).
        y_scale, y_offset: scalars for the target channel.
        dtype: precision of the scaling; float64 for tree models, whose splits compare the scaled input with
            thresholds found in float64 (a float32 rounding could send a value on a threshold the other way).
            The output is float32 either way.
    """

    def __init__(
        self,
        net: nn.Module,
        x_scale: np.ndarray,
        x_offset: np.ndarray,
        y_scale: float,
        y_offset: float,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.net = net
        # copies: scalers arrive read-only from Ray's object store, and torch warns on (and would share) those
        self.register_buffer("x_scale", torch.tensor(np.array(x_scale), dtype=dtype))
        self.register_buffer("x_offset", torch.tensor(np.array(x_offset), dtype=dtype))
        self.register_buffer("y_scale", torch.tensor(float(y_scale), dtype=dtype))
        self.register_buffer("y_offset", torch.tensor(float(y_offset), dtype=dtype))
        self.register_buffer("margin", None)  # a quantile model's conformal margin [H], real units (set_margin)
        self.register_buffer("floor", None)  # least real-unit output, 0 for counts and speeds (set_floor)

    def set_margin(self, margin: np.ndarray) -> "ScaledModel":
        """Move the lowest quantile level down and the highest up by ``margin [H]`` (real units) in ``forward``;
        a calibrated model's state dict then holds ``margin``, so bundles and exports keep it."""
        self.margin = torch.as_tensor(np.asarray(margin, dtype=np.float32))
        return self

    def set_floor(self, floor: float | None) -> "ScaledModel":
        """Clip every output (point and quantile levels) at ``floor`` in ``forward``, or not when None: a target
        that is never negative (trips, risk, km/h) should not get a negative forecast or a negative lower bound.
        Clipping is monotone, so quantile levels stay ordered; the state dict holds ``floor`` like ``margin``."""
        self.floor = None if floor is None else torch.tensor(float(floor), dtype=torch.float32)
        return self

    def scale_x(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.x_scale.dtype) * self.x_scale + self.x_offset  # [B, T, N, F], broadcast over F

    def scale_y(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.y_scale + self.y_offset

    def unscale_y(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.y_offset) / self.y_scale

    def forward_scaled(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled-space prediction from real-unit input (what the loss sees)."""
        return self.net(self.scale_x(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.unscale_y(self.forward_scaled(x)).to(torch.float32)
        y = y if self.margin is None else widen(y, self.margin)
        return y if self.floor is None else torch.maximum(y, self.floor)
