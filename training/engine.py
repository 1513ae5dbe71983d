"""The pieces both train loops share (in-process and Ray workers): module, loaders, trainer settings, weights."""

import logging
import signal
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch.utils.data import DataLoader

from cityagent.hub.protocols import TaskData
from cityagent.training.build import build_scaled_model
from cityagent.training.config import RunConfig
from cityagent.training.data import make_loader
from cityagent.training.losses import make_loss
from cityagent.training.metrics import median_level
from cityagent.training.module import ForecastModule

MODEL_PREFIX = "model."  # ForecastModule keeps the ScaledModel as .model

# Library chatter on every run, in the driver and in each Ray worker (both import this module): Lightning 2.6 still
# builds torch's deprecated LeafSpec (their FutureWarning to fix, not the user's), advertises a cloud logger, and
# announces the devices and a normal end on every fit. Its warnings (e.g. "GPU available but not used") and the
# stops that matter ("`Trainer.fit` stopped: No training batches.") still show.
LIGHTNING_CHATTER = (
    "💡 Tip",
    "GPU available: ",
    "TPU available: ",
    "`Trainer.fit` stopped: `max_epochs=",
    "`Trainer.fit` stopped: `max_steps=",
)
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: not str(record.msg).startswith(LIGHTNING_CHATTER)
)


@dataclass
class TrainOutput:
    """What a train loop hands back to the driver.

    Args:
        state_dict: best weights (lowest monitored loss) of the ``ScaledModel``.
        build_params: registry build params of its net.
        history: rank 0's metrics per epoch, in epoch order.
        checkpoint: where the best checkpoint lives (a file, or a Ray checkpoint directory).
        best_epoch: the epoch of those weights.
        info: how it ran (mode, workers, resumed_from_epoch, seconds).
    """

    state_dict: dict[str, torch.Tensor]
    build_params: dict[str, Any]
    history: list[dict[str, float]]
    checkpoint: str | None
    best_epoch: int
    info: dict[str, Any] = field(default_factory=dict)


def monitor_for(task: TaskData) -> str:
    """``val_loss``, or ``train_loss`` for protocols without a validation split (e.g. tgcn)."""
    return "val_loss" if len(task.val) else "train_loss"


def make_module(task: TaskData, cfg: RunConfig) -> tuple[ForecastModule, dict[str, Any]]:
    """The LightningModule for ``cfg`` on ``task``, and the registry build params of its net."""
    qs = cfg.train.quantiles
    model, params = build_scaled_model(task, cfg.model, qs)
    loss = make_loss(cfg.train.loss, qs, float(task.y_scaler.scale[0]), float(task.y_scaler.offset[0]))
    module = ForecastModule(
        model,
        loss,
        lr=cfg.train.lr,
        weight_decay=cfg.train.weight_decay,
        max_epochs=cfg.train.max_epochs,
        scheduler=cfg.train.scheduler,
        monitor=monitor_for(task),
        point_index=median_level(qs) if qs else None,
    )
    return module, params


def make_loaders(task: TaskData, cfg: RunConfig) -> tuple[DataLoader, DataLoader | None]:
    """Shuffled training batches and, when the task has validation windows, ordered validation batches."""
    train = make_loader(task.train, cfg.train.batch_size, shuffle=True, seed=cfg.train.seed)
    val = make_loader(task.val, cfg.train.batch_size, shuffle=False) if len(task.val) else None
    return train, val


def trainer_kwargs(cfg: RunConfig) -> dict[str, Any]:
    """``pl.Trainer`` settings from the ``train`` section (no Lightning logger: MLflow is logged by the driver)."""
    return {
        "max_epochs": cfg.train.max_epochs,
        "gradient_clip_val": cfg.train.grad_clip or None,
        "limit_train_batches": all_batches_as_none(cfg.train.limit_train_batches),
        "accelerator": cfg.train.accelerator,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }


def fit_trainer(trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
    """``trainer.fit`` with Ctrl-C coming out as KeyboardInterrupt. Lightning turns it into ``sys.exit(1)`` (which ends
    a script, escapes a notebook's ``except KeyboardInterrupt`` and marks the MLflow run FAILED, not KILLED) and
    leaves SIGINT ignored for the rest of the process, so a notebook could not be interrupted again."""
    handler = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    try:
        trainer.fit(*args, **kwargs)
    except SystemExit as e:
        if type(e) is SystemExit and e.code == 1 and trainer.interrupted:  # not Lightning's SIGTERMException
            raise KeyboardInterrupt("training interrupted") from None
        raise
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)


def all_batches_as_none(limit: float | int) -> float | int | None:
    """None (Lightning's own "all batches") for the float 1.0, which Lightning otherwise announces on every run; an
    int 1 is one batch and stays."""
    return None if isinstance(limit, float) and limit == 1.0 else limit


def early_stopping(cfg: RunConfig, monitor: str) -> EarlyStopping:
    return EarlyStopping(monitor=monitor, mode="min", patience=cfg.train.patience)


def set_threads(cfg: RunConfig, worker: bool) -> None:
    """Torch intra-op threads: ``train.num_threads``, else (in a Ray worker) the CPUs the worker was given."""
    if cfg.train.num_threads or worker:
        torch.set_num_threads(cfg.train.num_threads or cfg.train.cpus_per_worker)


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], int]:
    """``(ScaledModel state_dict, epoch)`` from a Lightning checkpoint file written by this engine."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)  # our own file: callbacks' state included
    state = {k[len(MODEL_PREFIX) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(MODEL_PREFIX)}
    return state, int(ckpt.get("epoch", -1))


class History(pl.Callback):
    """Rank 0's epoch metrics (``callback_metrics`` at the end of each training epoch, validation included).

    Args:
        on_epoch: called with each row as it is recorded (e.g. to log it to MLflow live).
    """

    def __init__(self, on_epoch: Callable[[dict[str, float]], None] | None = None) -> None:
        self.rows: list[dict[str, float]] = []
        self.on_epoch = on_epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        row = {k: float(v) for k, v in trainer.callback_metrics.items()}
        row["epoch"] = trainer.current_epoch
        self.rows.append(row)
        if self.on_epoch is not None:
            self.on_epoch(row)
