"""Train in this process with plain Lightning (``train.workers=0``): no Ray, same module, loaders and stopping."""

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint

from cityagent.hub.protocols import TaskData
from cityagent.training.config import RunConfig
from cityagent.training.engine import (
    History,
    TrainOutput,
    early_stopping,
    fit_trainer,
    make_loaders,
    make_module,
    monitor_for,
    read_checkpoint,
    set_threads,
    trainer_kwargs,
)


def train_local(
    task: TaskData,
    cfg: RunConfig,
    checkpoint_dir: str | Path,
    callbacks: Sequence[pl.Callback] = (),
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrainOutput:
    """Fit ``cfg.model`` on ``task`` in-process; keeps the best and the last checkpoint in ``checkpoint_dir``.

    Args:
        task: the windows.
        cfg: the run config (``train`` section: epochs, batch size, optimiser, patience, seed).
        checkpoint_dir: where Lightning writes ``best.ckpt`` and ``last.ckpt``.
        callbacks: extra Lightning callbacks.
        on_epoch: called with each epoch's metrics (e.g. to log them to MLflow as they come).
    """
    t0 = time.perf_counter()
    set_threads(cfg, worker=False)
    pl.seed_everything(cfg.train.seed, workers=True, verbose=False)
    module, params = make_module(task, cfg)
    monitor = monitor_for(task)
    best = ModelCheckpoint(
        dirpath=str(checkpoint_dir),
        filename="best",
        monitor=monitor,
        mode="min",
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,
    )
    history = History(on_epoch)
    trainer = pl.Trainer(
        **trainer_kwargs(cfg),
        devices=1,
        default_root_dir=str(checkpoint_dir),
        callbacks=[history, early_stopping(cfg, monitor), best, *callbacks],
    )
    train_dl, val_dl = make_loaders(task, cfg)
    fit_trainer(trainer, module, train_dl, val_dl)
    state, epoch = read_checkpoint(best.best_model_path)
    info = {
        "mode": "local",
        "workers": 0,
        "epochs_run": trainer.current_epoch,
        "train_seconds": round(time.perf_counter() - t0, 2),
    }
    return TrainOutput(state, params, history.rows, best.best_model_path, epoch, info)
