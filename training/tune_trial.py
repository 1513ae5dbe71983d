"""What runs inside one Tune trial: in-process Lightning reporting to Tune, or a Ray Train run whose reports flow
up to Tune, plus the callback that frees the workers of a trial that ASHA stopped."""

import copy
import logging
import tempfile
from pathlib import Path
from typing import Any

from cityagent.hub.protocols import TaskData
from cityagent.models.registry import ModelInfo
from cityagent.models.user_models import adopt
from cityagent.training.config import RunConfig, load_config
from cityagent.training.ray_cluster import storage_path
from cityagent.training.ray_worker import CKPT_NAME, train_worker

log = logging.getLogger(__name__)


def trial_config(base: dict[str, Any], trial: dict[str, Any]) -> RunConfig:
    """``base`` (a ``RunConfig.model_dump()``) with the trial's dotted-key values."""
    return load_config(None, trial, **copy.deepcopy(base))


def release_file(folder: str | Path, trial_id: str) -> Path:
    return Path(folder) / f"{trial_id}.placement_group"


def release_callback(folder: str) -> Any:
    """A Tune callback that removes the placement group of a Ray-Train trial once the trial has ended.

    Ray 2.60 keeps a placement group until its job ends even when the actor that made it is gone, so the
    workers of a trial that ASHA stopped would hold their CPUs for the rest of the sweep (and, on a small
    cluster, keep every later trial waiting). Rank 0 writes the group's id when the run starts.
    """
    from ray import tune
    from ray.util.placement_group import PlacementGroup, remove_placement_group

    class ReleaseStoppedRuns(tune.Callback):
        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._release(trial)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._release(trial)

        def _release(self, trial: Any) -> None:
            import ray

            path = release_file(folder, trial.trial_id)
            if not path.is_file():
                return
            try:
                remove_placement_group(PlacementGroup(ray.PlacementGroupID.from_hex(path.read_text().strip())))
            except Exception as e:  # already removed by a run that ended normally
                log.debug("placement group of trial %s: %s", trial.trial_id, e)
            path.unlink(missing_ok=True)

    return ReleaseStoppedRuns()


def run_trial(
    trial: dict[str, Any],
    task: TaskData,
    base: dict[str, Any],
    monitor: str,
    release_dir: str = "",
    model: ModelInfo | None = None,
) -> None:
    """One Tune trial: in-process Lightning, or a Ray Train run whose reports flow up to Tune. ``monitor`` is the
    metric the driver ranks trials by (``engine.monitor_for``); ``model`` is a model registered in the driver's
    ``__main__`` (``main_model``), registered here and sent on to the workers."""
    adopt(model)
    cfg = trial_config(base, trial)
    if cfg.train.workers == 0:
        _train_here(task, cfg, monitor)
        return
    import ray
    from ray import tune
    from ray.train import CheckpointConfig, FailureConfig, ScalingConfig
    from ray.train import RunConfig as RayRunConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    pg_file = release_file(release_dir, tune.get_context().get_trial_id())
    TorchTrainer(
        train_worker,
        train_loop_config={
            "task": ray.put(task),
            "cfg": cfg.model_dump(),
            "pg_file": str(pg_file),
            "model": ray.put(model),
        },
        scaling_config=ScalingConfig(
            num_workers=cfg.train.workers, resources_per_worker={"CPU": cfg.train.cpus_per_worker}
        ),
        run_config=RayRunConfig(
            name=f"trial-{tune.get_context().get_trial_id()}",
            storage_path=storage_path(),
            callbacks=[TuneReportCallback()],
            # no restarts inside a sweep: a run whose trial was stopped must not grab new workers
            failure_config=FailureConfig(max_failures=0),
            checkpoint_config=CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute=monitor, checkpoint_score_order="min"
            ),
        ),
    ).fit()


def _train_here(task: TaskData, cfg: RunConfig, monitor: str) -> None:
    """An in-process trial: Lightning in this process, each epoch's metrics and checkpoint reported to Tune. (Its
    imports are here: a trial that starts a Ray Train run does not train in this process and need not load them.)"""
    import lightning.pytorch as pl
    from ray import tune

    from cityagent.training.engine import (
        early_stopping,
        make_loaders,
        make_module,
        set_threads,
        trainer_kwargs,
    )

    class TuneReport(pl.Callback):
        def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items()} | {"epoch": trainer.current_epoch}
            with tempfile.TemporaryDirectory() as tmp:
                trainer.save_checkpoint(Path(tmp) / CKPT_NAME)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    set_threads(cfg, worker=True)
    pl.seed_everything(cfg.train.seed, workers=True, verbose=False)
    module, _ = make_module(task, cfg)
    callbacks = [TuneReport(), early_stopping(cfg, monitor)]
    trainer = pl.Trainer(**trainer_kwargs(cfg), devices=1, callbacks=callbacks, enable_checkpointing=False)
    trainer.fit(module, *make_loaders(task, cfg))
