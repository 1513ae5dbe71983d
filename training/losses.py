"""Training losses in the model's scaled space, each ignoring masked (missing) targets.

Every loss takes ``pred [B, H, N]`` (``[B, H, N, Q]`` for quantiles), ``target [B, H, N]`` and
``mask [B, H, N]`` (bool, True where the target was observed) and returns a scalar.
"""

from collections.abc import Sequence

import torch
from torch import nn

from cityagent.errors import ConfigError

LOSSES = ("mae", "mse", "huber", "risk", "quantile")


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over observed entries; 0 (still differentiable) when nothing is observed."""
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp(min=1.0)


class MaskedMAE(nn.Module):
    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return _masked_mean((pred - target).abs(), mask)


class MaskedMSE(nn.Module):
    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return _masked_mean((pred - target) ** 2, mask)


class MaskedHuber(nn.Module):
    """Huber (smooth L1) with threshold ``delta`` in scaled units."""

    def __init__(self, delta: float = 1.0) -> None:
        super().__init__()
        self.delta = delta

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        err = nn.functional.huber_loss(pred, target, reduction="none", delta=self.delta)
        return _masked_mean(err, mask)


class Pinball(nn.Module):
    """Quantile (pinball) loss averaged over levels: ``max(q * e, (q - 1) * e)`` with ``e = y - pred_q``.

    Args:
        quantiles: the levels of the model's last output axis.
    """

    def __init__(self, quantiles: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("q", torch.tensor(list(quantiles), dtype=torch.float32))

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if pred.ndim != target.ndim + 1 or pred.shape[-1] != len(self.q):
            raise ConfigError(f"quantile loss needs predictions [B, H, N, {len(self.q)}], got {tuple(pred.shape)}")
        err = target.unsqueeze(-1) - pred  # [B, H, N, Q]
        loss = torch.maximum(self.q * err, (self.q - 1) * err).mean(-1)  # [B, H, N]
        return _masked_mean(loss, mask)


class RiskLoss(nn.Module):
    """Squared error weighted by the true risk level, for targets that are ~99% zero (after GSNet's loss).

    GSNet (Wang et al., AAAI 2021) weights zero cells 0.05 and risky cells 0.2–0.5 by risk level so that a
    model cannot win by predicting zero everywhere. Levels here are in real units (severity sums), so the
    loss is told the target scaler.

    Args:
        y_scale, y_offset: the target scaler (scaled = real * scale + offset).
        levels: ``(upper bound, weight)`` pairs in real units for non-zero targets, increasing; above the
            last bound the last weight applies.
        zero_weight: weight of cells whose true risk is 0.
    """

    def __init__(
        self,
        y_scale: float = 1.0,
        y_offset: float = 0.0,
        levels: Sequence[tuple[float, float]] = ((1.0, 0.2), (2.0, 0.25), (float("inf"), 0.5)),
        zero_weight: float = 0.05,
    ) -> None:
        super().__init__()
        self.y_scale, self.y_offset, self.zero_weight = float(y_scale), float(y_offset), float(zero_weight)
        self.register_buffer("bounds", torch.tensor([b for b, _ in levels], dtype=torch.float32))
        self.register_buffer("weights", torch.tensor([w for _, w in levels], dtype=torch.float32))

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        real = (target - self.y_offset) / self.y_scale
        level = torch.bucketize(real, self.bounds).clamp(max=len(self.weights) - 1)  # first bound ≥ real
        w = torch.where(real > 1e-6, self.weights[level], torch.full_like(real, self.zero_weight))
        return _masked_mean(w * (pred - target) ** 2, mask)


def make_loss(
    name: str, quantiles: Sequence[float] | None = None, y_scale: float = 1.0, y_offset: float = 0.0
) -> nn.Module:
    """The loss ``name`` (one of ``LOSSES``).

    Args:
        name: ``mae``, ``mse``, ``huber``, ``risk`` or ``quantile``.
        quantiles: levels, required by (and only allowed with) ``quantile``.
        y_scale, y_offset: target scaler, used by ``risk`` to weight by real risk level.
    """
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    if (name == "quantile") != bool(quantiles):
        raise ConfigError(
            "train.loss=quantile needs train.quantiles (e.g. [0.1, 0.5, 0.9]) and quantiles need "
            f"train.loss=quantile; got loss={name!r}, quantiles={quantiles!r}"
        )
    if name == "quantile":
        return Pinball(quantiles)
    if name == "risk":
        return RiskLoss(y_scale, y_offset)
    return {"mae": MaskedMAE, "mse": MaskedMSE, "huber": MaskedHuber}[name]()
