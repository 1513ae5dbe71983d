"""Train on Ray: a ``TorchTrainer`` whose workers run Lightning through Ray's own integration (``ray_worker``).

The driver connects (``ray_cluster``), watches the placement (``ray_wait``), feeds each epoch rank 0 reports to
MLflow while the run trains, and asks the workers to stop through a ``StopFlag`` actor when it cannot log them.
The task travels through the object store (``ray.put``), so no shared filesystem is needed for the data.
"""

import json
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from cityagent.errors import CityAgentError
from cityagent.home import home_dir
from cityagent.hub.protocols import TaskData
from cityagent.models.user_models import main_model
from cityagent.training.build import build_params
from cityagent.training.config import RunConfig
from cityagent.training.engine import (
    TrainOutput,
    monitor_for,
    read_checkpoint,
)
from cityagent.training.ray_cluster import connect, storage_path
from cityagent.training.ray_wait import PlacementWatch
from cityagent.training.ray_worker import CKPT_NAME, train_worker
from cityagent.training.stop_flag import StopFlag

log = logging.getLogger(__name__)


class _EpochFeed(threading.Thread):
    """Hand each epoch rank 0 reported to ``on_epoch`` while the run trains (its MLflow run shows progress live); an
    error there (the tracking server is gone) asks the workers to stop and is raised once the run has stopped."""

    def __init__(self, path: Path, on_epoch: Callable[[dict[str, float]], None], flag: Any) -> None:
        super().__init__(daemon=True, name="ray-epoch-feed")
        self.path, self.on_epoch, self.flag = path, on_epoch, flag
        self.done, self.error, self.read, self.fed = threading.Event(), None, 0, set()

    def feed(self) -> None:
        if self.error is not None or not self.path.is_file():
            return
        lines = self.path.read_text().splitlines()
        for line in lines[self.read :]:
            row = json.loads(line)
            try:
                self.on_epoch(row)
            except Exception as e:
                self.error = e
                self.flag.set.remote(f"{type(e).__name__}: {e}")
                return
            self.fed.add(int(row.get("epoch", -1)))
        self.read = len(lines)

    def run(self) -> None:
        while not self.done.wait(2.0):
            self.feed()


def epoch_log(path: str) -> Any:
    """A Ray Train controller callback appending rank 0's metrics of every report to ``path`` (JSON lines).

    The controller runs on the driver's node, so ``path`` is a local file of the driver; the history then does
    not depend on how many checkpoints are kept.
    """
    from ray.train import UserCallback

    class EpochLog(UserCallback):
        def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
            if metrics:
                row = {k: float(v) for k, v in metrics[0].items() if isinstance(v, int | float)}
                with open(path, "a") as f:
                    f.write(json.dumps(row) + "\n")

    return EpochLog()


def read_history(path: Path) -> list[dict[str, float]]:
    """One row per epoch from an ``epoch_log`` file (after a restart, the last report of an epoch wins)."""
    rows: dict[int, dict[str, float]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            rows[int(row.get("epoch", len(rows)))] = row
    return [rows[e] for e in sorted(rows)]


def train_ray(
    task: TaskData,
    cfg: RunConfig,
    name: str | None = None,
    callbacks: Sequence[pl.Callback] = (),
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrainOutput:
    """Fit ``cfg.model`` on ``task`` with ``cfg.train.workers`` Ray Train workers.

    Args:
        task: the windows (shipped to the workers through the object store).
        cfg: the run config; ``train.workers``, ``cpus_per_worker``, ``max_failures``, ``address`` matter here.
        name: Ray Train run name (a folder under the storage path); default a fresh unique name.
        callbacks: extra Lightning callbacks, pickled to every worker.
        on_epoch: called in this process with rank 0's metrics of each epoch while the run trains (e.g. the MLflow
            run's ``epoch``); when it raises, the workers stop after their epoch and the error is raised here.

    Raises:
        CityAgentError: the cluster cannot be reached, or training failed more than ``max_failures`` times.
    """
    import ray
    from ray.train import CheckpointConfig, FailureConfig, ScalingConfig
    from ray.train import RunConfig as RayRunConfig
    from ray.train.torch import TorchTrainer

    t0 = time.perf_counter()
    workers, cpus = cfg.train.workers, cfg.train.cpus_per_worker
    gpus = workers if cfg.train.accelerator == "gpu" else 0
    sigterm = signal.getsignal(signal.SIGTERM)  # ray.init replaces it; restored below
    started = connect(cfg.train.address, workers * cpus, cpus_per_worker=cpus, num_gpus=gpus)
    monitor = monitor_for(task)
    name = name or f"{cfg.model.name}-{uuid.uuid4().hex[:8]}"
    log_file = home_dir() / "ray" / "epochs" / f"{name}.jsonl"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.unlink(missing_ok=True)
    feed, flag = None, None
    watch = PlacementWatch(ray.get_runtime_context().get_job_id())
    watch.start()
    try:
        loop_config = {
            "task": ray.put(task),
            "cfg": cfg.model_dump(),
            # through the object store, as the task: the controller then never unpickles them (a model or a
            # callback class would make it import torch and Lightning, seconds before it starts the workers)
            "model": ray.put(main_model(cfg.model.name)),
            "callbacks": ray.put(list(callbacks)),
            "stop": None,
        }
        if on_epoch is not None:
            loop_config["stop"] = flag = ray.remote(num_cpus=0)(StopFlag).remote()
            feed = _EpochFeed(log_file, on_epoch, loop_config["stop"])
            feed.start()
        trainer = TorchTrainer(
            train_worker,
            train_loop_config=loop_config,
            scaling_config=ScalingConfig(
                num_workers=workers, use_gpu=cfg.train.accelerator == "gpu", resources_per_worker={"CPU": cpus}
            ),
            run_config=RayRunConfig(
                name=name,
                storage_path=storage_path(),
                failure_config=FailureConfig(max_failures=cfg.train.max_failures),
                # the best and (always kept by Ray, for resuming) the latest checkpoint
                checkpoint_config=CheckpointConfig(
                    num_to_keep=1, checkpoint_score_attribute=monitor, checkpoint_score_order="min"
                ),
                callbacks=[epoch_log(str(log_file))],
            ),
        )
        try:
            result = trainer.fit()
        except ray.train.TrainingFailedError as e:
            raise CityAgentError(
                f"Ray training of {cfg.model.name!r} failed (max_failures={cfg.train.max_failures}): {e}"
            ) from e
        finally:
            if feed is not None:
                feed.done.set()
                feed.join()
        if feed is not None:
            feed.feed()  # the last epochs, reported after its last look
            if feed.error is not None:
                raise feed.error
        best = result.get_best_checkpoint(monitor, "min") or result.checkpoint
        if best is None:
            raise CityAgentError("Ray training reported no checkpoint; did every epoch fail?")
        with best.as_directory() as folder:
            state, epoch = read_checkpoint(Path(folder) / CKPT_NAME)
    finally:
        watch.stop()
        if flag is not None and not started:  # a session the caller keeps (a notebook's ray.init()) keeps no actor
            ray.kill(flag)
        if started:
            ray.shutdown()
        # after ray.shutdown ray.init's handler (sys.exit) stays behind and a SIGTERM would end this process, so the
        # caller's clean-up (e.g. the retrain scheduler marking an interrupted run) gets its handler back
        if sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm)
    history = read_history(log_file)
    if feed is not None:  # epochs it has not handed over yet (none, unless a report came after its last read)
        for row in history:
            if int(row.get("epoch", -1)) not in feed.fed:
                on_epoch(row)
    resumed = [int(r["resumed_from_epoch"]) for r in history if "resumed_from_epoch" in r]
    info = {
        "mode": "ray",
        "workers": workers,
        "cpus_per_worker": cpus,
        "ray_run": str(result.path),
        "resumed_from_epoch": min(resumed) if resumed else None,
        "epochs_run": len(history),
        "train_seconds": round(time.perf_counter() - t0, 2),
    }
    params = build_params(task, cfg.model, cfg.train.quantiles)
    return TrainOutput(state, params, history, best.path, epoch, info)
