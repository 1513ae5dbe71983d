"""The Lightning engine: loss in scaled space, validation metrics in real units, AdamW with a schedule."""

from typing import Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch import nn

from cityagent.models.scaled import ScaledModel

Scheduler = Literal["cosine", "plateau", "none"]


class ForecastModule(pl.LightningModule):
    """Trains a real-unit ``ScaledModel``: the loss sees ``forward_scaled(x)`` against the scaled target.

    Logged per epoch: ``train_loss``, ``val_loss`` (scaled space, the early-stopping monitor), ``val_mae``
    (real units, every node, clipped at the model's floor as its answers are), ``lr``, and ``resumed_from_epoch``
    after a restart from a checkpoint.

    Args:
        model: the real-unit model (registry net + scalers).
        loss: a loss from ``cityagent.training.losses``.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        max_epochs: cosine schedule length.
        scheduler: ``cosine`` (annealing to 0 over max_epochs), ``plateau`` (halve on a stalled monitor) or ``none``.
        monitor: the metric the plateau schedule watches (``val_loss``, or ``train_loss`` without validation).
        point_index: quantile level used as the point forecast for ``val_mae`` (None for point models).
    """

    def __init__(
        self,
        model: ScaledModel,
        loss: nn.Module,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        max_epochs: int = 20,
        scheduler: Scheduler = "cosine",
        monitor: str = "val_loss",
        point_index: int | None = None,
    ) -> None:
        super().__init__()
        self.model, self.loss = model, loss
        self.lr, self.weight_decay, self.max_epochs = lr, weight_decay, max_epochs
        self.scheduler_kind, self.monitor, self.point_index = scheduler, monitor, point_index
        self.resumed_from_epoch = -1  # set by the train loop when it restores a checkpoint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _loss(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y, mask = batch  # [B, T, N, F], [B, H, N], [B, H, N]
        pred = self.model.forward_scaled(x)  # [B, H, N] or [B, H, N, Q]
        return self.loss(pred, self.model.scale_y(y), mask), pred

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        n = len(batch[0])
        self.log("train_loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=n)
        if batch_idx == 0:  # equal on every rank: sync_dist averages equal values, and Lightning asks for it
            lr = self.trainer.optimizers[0].param_groups[0]["lr"]
            self.log("lr", lr, on_step=False, on_epoch=True, sync_dist=True, batch_size=1)
            if self.resumed_from_epoch >= 0:
                resumed = float(self.resumed_from_epoch)
                self.log("resumed_from_epoch", resumed, on_step=False, on_epoch=True, sync_dist=True, batch_size=1)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        loss, pred = self._loss(batch)
        _, y, mask = batch
        point = pred if self.point_index is None else pred[..., self.point_index]
        real = self.model.unscale_y(point)
        if self.model.floor is not None:  # scored as it will answer: clipped at the target's floor, like test
            real = torch.maximum(real, self.model.floor)
        err = (real - y).abs() * mask
        mae = err.sum() / mask.sum().clamp(min=1)
        n = len(y)
        self.log("val_loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=n)
        self.log("val_mae", mae, on_step=False, on_epoch=True, sync_dist=True, batch_size=n)

    def configure_optimizers(self) -> OptimizerLRScheduler:
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if self.scheduler_kind == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.max_epochs)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        if self.scheduler_kind == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": self.monitor}}
        return opt
