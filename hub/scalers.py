"""Per-channel scalers that are all ``x * scale + offset``, so an exported model can carry them as two constants."""

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from cityagent.errors import ConfigError, HubError


class Scaler:
    """Affine per-channel scaling over the last axis; channels not in ``channels`` pass through unchanged.

    Args:
        channels: indices of the channels to fit (default: all); the others keep scale 1, offset 0.
    """

    kind: ClassVar[str] = "identity"

    def __init__(self, channels: Sequence[int] | None = None) -> None:
        self.channels = None if channels is None else [int(c) for c in channels]
        self.scale: np.ndarray | None = None  # [C] float64
        self.offset: np.ndarray | None = None  # [C] float64

    def _params(self, col: np.ndarray) -> tuple[float, float]:
        """(scale, offset) for one channel's observed values."""
        return 1.0, 0.0

    def fit(self, values: np.ndarray, observed: np.ndarray | None = None) -> "Scaler":
        """Fit on ``values [..., C]``, using only entries that are observed (mask) and not NaN."""
        c = values.shape[-1]
        chans = range(c) if self.channels is None else self.channels
        self.scale, self.offset = np.ones(c), np.zeros(c)
        for k in chans:
            col = np.asarray(values[..., k], dtype=np.float64)  # one channel at a time: no copy of the whole
            ok = ~np.isnan(col)
            if observed is not None:
                ok &= np.broadcast_to(observed, values.shape)[..., k]
            col = col[ok]
            if not len(col) and self.kind != "identity":
                raise HubError(
                    f"{self.kind} scaler: channel {k} has no observed values in the fitting data; "
                    f"choose a longer training part or drop the channel"
                )
            self.scale[k], self.offset[k] = self._params(col)
        return self

    def _fitted(self) -> None:
        if self.scale is None:
            raise ConfigError(f"{type(self).__name__} is not fitted; call fit() first")

    def _ready(self, x: np.ndarray) -> None:
        self._fitted()
        if x.shape[-1] != len(self.scale) and len(self.scale) != 1:
            raise ConfigError(f"scaler has {len(self.scale)} channels but the data's last axis is {x.shape[-1]}")

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scaled ``x`` (same dtype for float input)."""
        self._ready(x)
        out = x * self.scale + self.offset
        return out.astype(x.dtype) if np.issubdtype(x.dtype, np.floating) else out

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Real units back from scaled ``z``."""
        self._ready(z)
        out = (z - self.offset) / self.scale
        return out.astype(z.dtype) if np.issubdtype(z.dtype, np.floating) else out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state: kind, channels, scale and offset."""
        self._fitted()
        return {
            "kind": self.kind,
            "channels": self.channels,
            "scale": self.scale.tolist(),
            "offset": self.offset.tolist(),
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Scaler":
        """Rebuild a fitted scaler from ``to_dict()`` output."""
        s = make_scaler(d["kind"], d.get("channels"))
        s.scale, s.offset = np.asarray(d["scale"], dtype=np.float64), np.asarray(d["offset"], dtype=np.float64)
        return s


def _safe(span: float) -> float:
    return span if np.isfinite(span) and span != 0 else 1.0  # a constant channel is only shifted


class IdentityScaler(Scaler):
    kind = "identity"


class MinMaxScaler(Scaler):
    """``(x - min) / (max - min)`` → [0, 1] on the fitting data."""

    kind = "minmax"

    def _params(self, col: np.ndarray) -> tuple[float, float]:
        lo, span = float(col.min()), _safe(float(col.max() - col.min()))
        return 1.0 / span, -lo / span


class StandardScaler(Scaler):
    """``(x - mean) / std``."""

    kind = "standard"

    def _params(self, col: np.ndarray) -> tuple[float, float]:
        mean, std = float(col.mean()), _safe(float(col.std()))
        return 1.0 / std, -mean / std


class MaxScaler(Scaler):
    """``x / max`` (T-GCN divides by the global maximum)."""

    kind = "max"

    def _params(self, col: np.ndarray) -> tuple[float, float]:
        return 1.0 / _safe(float(col.max())), 0.0


SCALERS: dict[str, type[Scaler]] = {s.kind: s for s in (MinMaxScaler, StandardScaler, MaxScaler, IdentityScaler)}


def make_scaler(kind: str, channels: Sequence[int] | None = None) -> Scaler:
    """A scaler by name (``minmax``, ``standard``, ``max``, ``identity``)."""
    if kind not in SCALERS:
        raise ConfigError(f"unknown scaler {kind!r}; choose from {list(SCALERS)}")
    return SCALERS[kind](channels)
