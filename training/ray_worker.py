"""The loop every Ray Train worker runs: Lightning through Ray's own integration, resumed from Ray's checkpoint.

Each worker builds a normal ``pl.Trainer(strategy=RayDDPStrategy(), plugins=[RayLightningEnvironment()],
callbacks=[RayTrainReportCallback(), EarlyStopping])`` passed through ``prepare_trainer``; a checkpoint is
reported every epoch, and after a worker failure the group restarts from ``ray.train.get_checkpoint()``.

Torch, Lightning and the models are imported inside the loop: a Tune trial that starts a Ray Train run imports this
module to hand the loop on, and it never trains itself.
"""

from pathlib import Path
from typing import Any

CKPT_NAME = "checkpoint.ckpt"  # RayTrainReportCallback.CHECKPOINT_NAME


def train_worker(config: dict[str, Any]) -> None:
    """The loop every Ray Train worker runs (``train_loop_per_worker``)."""
    import lightning.pytorch as pl
    import ray
    import ray.train
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, RayTrainReportCallback, prepare_trainer

    from cityagent.hub.protocols import TaskData
    from cityagent.models.user_models import adopt
    from cityagent.training.config import RunConfig
    from cityagent.training.engine import (
        early_stopping,
        make_loaders,
        make_module,
        monitor_for,
        read_checkpoint,
        set_threads,
        trainer_kwargs,
    )

    def stored(value: Any) -> Any:  # what the driver sent through the object store
        return ray.get(value) if isinstance(value, ray.ObjectRef) else value

    task: TaskData = stored(config["task"])
    adopt(stored(config.get("model")))  # a model of the driver's notebook or script, before its name is checked
    if config.get("pg_file") and ray.train.get_context().get_world_rank() == 0:
        group = ray.util.get_current_placement_group()  # so Tune can release it if it stops this run
        if group is not None:
            Path(config["pg_file"]).write_text(group.id.hex())
    cfg = RunConfig.model_validate(config["cfg"])
    set_threads(cfg, worker=True)
    pl.seed_everything(cfg.train.seed, workers=True, verbose=False)
    module, _ = make_module(task, cfg)
    callbacks = [RayTrainReportCallback(), early_stopping(cfg, monitor_for(task)), *stored(config.get("callbacks", []))]
    if config.get("stop") is not None:
        callbacks.append(stop_when_asked(config["stop"]))
    trainer = pl.Trainer(
        **trainer_kwargs(cfg),
        devices="auto",
        strategy=RayDDPStrategy(),
        plugins=[RayLightningEnvironment()],
        callbacks=callbacks,
    )
    trainer = prepare_trainer(trainer)
    train_dl, val_dl = make_loaders(task, cfg)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        trainer.fit(module, train_dl, val_dl)
        return
    with checkpoint.as_directory() as folder:
        path = Path(folder) / CKPT_NAME
        _, module.resumed_from_epoch = read_checkpoint(path)
        trainer.fit(module, train_dl, val_dl, ckpt_path=str(path))


def stop_when_asked(flag: Any) -> Any:
    """A Lightning callback that stops after this epoch when the driver asks through ``flag`` (a ``StopFlag``
    actor's handle): its tracking server is gone, the epochs could not be logged, so training on would only be
    thrown away. Every rank takes the same decision, as early stopping does."""
    import lightning.pytorch as pl
    import ray

    class StopWhenAsked(pl.Callback):
        def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            asked = ray.get(flag.get.remote()) is not None
            if trainer.strategy.reduce_boolean_decision(asked, all=False):
                trainer.should_stop = True

    return StopWhenAsked()
