"""Hyperparameter search with Ray Tune and ASHA: each trial is a Ray Train run (or, with ``train.workers=0``,
an in-process Lightning run; for a classical model, one scikit-learn fit, see ``tune_classical``); every trial is
logged to MLflow under one parent run, the best one in full."""

import logging
import math
import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cityagent.errors import CityAgentError, ConfigError
from cityagent.hub.protocols import TaskData
from cityagent.models.registry import model_info
from cityagent.models.user_models import main_model
from cityagent.training.build import build_params, check_buildable
from cityagent.training.callable_module import make_callable
from cityagent.training.config import RunConfig
from cityagent.training.conformal import check_conformal
from cityagent.training.engine import TrainOutput, monitor_for, read_checkpoint
from cityagent.training.fit import (
    FitResult,
    check_device,
    divergence,
    log_drift_reference,
    maybe_export,
    report_trained,
)
from cityagent.training.housekeeping import keep_sessions
from cityagent.training.overrides import ConfigLike, resolve_config
from cityagent.training.ray_cluster import connect, storage_path
from cityagent.training.ray_worker import CKPT_NAME
from cityagent.training.run_start import start_run
from cityagent.training.task import load_task, task_name
from cityagent.training.tracking import check_server, tracking_uri
from cityagent.training.tune_classical import classical_search_space, tune_classical
from cityagent.training.tune_space import (
    check_space,
    default_search_space,
    describe,
    fixed_keys,
    resolve_space,
    without_idle_params,
)
from cityagent.training.tune_trial import release_callback, run_trial, trial_config

# the space helpers live in tune_space; importers of this module find them here too
__all__ = ["check_samples", "check_space", "classical_search_space", "default_search_space", "trial_config", "tune"]
log = logging.getLogger(__name__)
FORCE_CLEANUP_ENV = "TUNE_FORCE_TRIAL_CLEANUP_S"


def check_samples(samples: Any) -> None:
    """``samples`` must be a whole number ≥ 1 (Ray reads -1 as "forever")."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"tune samples={samples!r} must be a whole number ≥ 1: the number of trials to run.")


def _history(result: Any) -> list[dict[str, float]]:
    df = result.metrics_dataframe
    if df is None or "epoch" not in df:
        return []
    keep = [c for c in df.columns if c in ("epoch", "train_loss", "val_loss", "val_mae", "lr")]
    rows = df[keep].dropna(subset=["epoch"]).drop_duplicates("epoch", keep="last")
    return [{k: float(v) for k, v in r.items()} for r in rows.to_dict("records")]


def _best_score(result: Any, monitor: str) -> float:
    """The trial's lowest finite ``monitor`` value, or NaN when it never had one."""
    values = [float(v) for v in result.metrics_dataframe[monitor] if math.isfinite(float(v))]
    return min(values) if values else math.nan


def _best_weights(result: Any, monitor: str) -> tuple[dict[str, Any], int, str]:
    """The trial's lowest-``monitor`` weights: a Train checkpoint path (Ray trials) or a Tune checkpoint."""
    df = result.metrics_dataframe
    row = df.loc[df[monitor].idxmin()]
    path = row.get("checkpoint_path") if "checkpoint_path" in df else None
    if isinstance(path, str) and path:
        state, epoch = read_checkpoint(Path(path) / CKPT_NAME)
        return state, epoch, path
    ckpt = result.get_best_checkpoint(monitor, "min") or result.checkpoint
    if ckpt is None:
        raise CityAgentError(f"the best trial ({result.path}) left no checkpoint")
    with ckpt.as_directory() as folder:
        state, epoch = read_checkpoint(Path(folder) / CKPT_NAME)
    return state, epoch, ckpt.path


def _search(cfg: RunConfig, task: TaskData, samples: int, space: dict[str, Any], max_concurrent: int | None) -> Any:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from cityagent.training.tune_progress import TrialLines

    monitor = monitor_for(task)
    in_process = cfg.train.workers == 0
    # a Ray-Train trial only drives its workers: it holds a little memory and no CPU (even a fraction of a CPU
    # would keep a whole-CPU worker bundle from fitting on a small machine)
    resources = {"cpu": cfg.train.cpus_per_worker} if in_process else {"memory": 64 * 2**20}
    if max_concurrent is None:
        import ray

        per_trial = cfg.train.cpus_per_worker * max(cfg.train.workers, 1)
        max_concurrent = max(1, int(ray.cluster_resources().get("CPU", 1) // per_trial))
    name = f"tune-{cfg.model.name}-{uuid.uuid4().hex[:8]}"
    release_dir = Path(storage_path()) / name / "placement_groups"
    release_dir.mkdir(parents=True, exist_ok=True)
    trainable = tune.with_resources(
        tune.with_parameters(
            run_trial,
            task=task,
            base=cfg.model_dump(),
            release_dir=str(release_dir),
            model=main_model(cfg.model.name),
            monitor=monitor,
        ),
        resources,
    )
    scheduler = ASHAScheduler(
        time_attr="training_iteration",
        max_t=cfg.train.max_epochs,
        grace_period=min(2, cfg.train.max_epochs),
        reduction_factor=2,
    )
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            metric=monitor, mode="min", num_samples=samples, scheduler=scheduler, max_concurrent_trials=max_concurrent
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path(),
            verbose=0,  # Ray's tables off: one line per trial instead
            callbacks=[TrialLines(samples, monitor, cfg.train.max_epochs)]
            + ([] if in_process else [release_callback(str(release_dir))]),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute=monitor, checkpoint_score_order="min"
            ),
        ),
    )
    # a stopped trial whose thread still waits on its Train run is force-killed after this many seconds (Ray's
    # default is 600); killing it takes the Train controller and workers with it, freeing their CPUs
    ours = not in_process and FORCE_CLEANUP_ENV not in os.environ
    if ours:
        os.environ[FORCE_CLEANUP_ENV] = "10"
    try:
        return tuner.fit()
    finally:
        if ours:
            os.environ.pop(FORCE_CLEANUP_ENV, None)


def tune(
    config: ConfigLike = None,
    samples: int = 4,
    search_space: dict[str, Any] | None = None,
    *,
    max_concurrent: int | None = None,
    fixed: Iterable[str] = (),
    say: Callable[[str], None] | None = None,
    **overrides: Any,
) -> FitResult:
    """Search hyperparameters with ASHA; log every trial to MLflow and return the best one, fully reported.

    Args:
        config: as for ``fit`` (a RunConfig, dict, YAML path or None).
        samples: number of trials.
        search_space: dotted config keys → specs, replacing the default space: Ray Tune domains
            (``tune.loguniform(1e-4, 1e-2)``), lists (a choice), ``{"low": 1e-4, "high": 1e-2, "log": True}`` (a
            range), ``{"grid_search": [...]}`` or constants (see ``tune_space``); ``task.*`` keys are refused.
            Default ``default_search_space(cfg)`` (deep) or ``classical_search_space(cfg)``, less the keys
            ``overrides`` or ``fixed`` set, and less a dropout that changes nothing in the model.
        max_concurrent: trials at once (default: as many as the cluster's CPUs allow).
        fixed: dotted keys the caller already set in ``config`` (``cityagent tune``'s command-line overrides):
            treated like ``overrides``' own keys, which stay as given and are never searched.
        say: where notes on the space go (a key left out because it is fixed); default ``log.warning``.
        **overrides: as for ``fit``.

    Returns:
        The best trial's FitResult (its MLflow run is a child of the sweep's parent run; ``info['parent_run_id']``).
    """
    from cityagent.training.tune_progress import quiet_tune_output

    check_samples(samples)
    cfg = resolve_config(config, overrides)
    say = say or log.warning
    space, notes = resolve_space(cfg, search_space, fixed_keys(overrides) | set(fixed))
    kind = model_info(cfg.model.name).kind
    check_conformal(cfg, kind)
    check_device(cfg, kind)
    keep_sessions()  # trials run on Ray: a bad $CITYAGENT_RAY_KEEP_SESSIONS is refused before anything starts
    uri = tracking_uri(cfg.tracking.tracking_uri)
    check_server(uri)
    task, fp = load_task(cfg.task)
    check_buildable(task, cfg.model, cfg.train.quantiles, cfg.task.domain)
    for note in notes:
        say(note)
    if search_space is None:  # a space the user gave is searched as given
        space = without_idle_params(cfg, task, space, say)
    check_space(cfg, task, space)
    monitor = monitor_for(task)
    started = connect(
        cfg.train.address,
        max(cfg.train.workers, 1) * cfg.train.cpus_per_worker,
        dashboard=cfg.train.workers > 0,
        cpus_per_worker=cfg.train.cpus_per_worker,
        num_gpus=cfg.train.workers if cfg.train.accelerator == "gpu" else 0,
    )
    try:
        with quiet_tune_output():
            if kind == "classical":
                return tune_classical(cfg, task, fp, uri, samples, space, max_concurrent)
            results = _search(cfg, task, samples, space, max_concurrent)
    finally:
        if started:
            import ray

            ray.shutdown()
    ran = [r for r in results if r.error is None and r.metrics_dataframe is not None and monitor in r.metrics_dataframe]
    if not ran:
        errors = "; ".join(str(r.error) for r in results if r.error is not None)[:2000]
        raise CityAgentError(f"every one of the {samples} trials failed: {errors}")
    # a trial whose validation loss was never finite diverged: NaN compares as neither smaller nor larger, so
    # without this it could be picked as "best" and exported
    ok = [r for r in ran if math.isfinite(_best_score(r, monitor))]
    if not ok:
        raise CityAgentError(
            f"every one of the {len(ran)} trials that ran diverged (NaN/inf {monitor} at every epoch); lower the "
            "learning rate range (--search 'train.lr={low: …, high: …, log: true}', or search_space['train.lr']) or "
            "check the data"
        )
    best = min(ok, key=lambda r: _best_score(r, monitor))
    with start_run(uri, cfg, task, fp, "deep", run_name=f"tune-{cfg.model.name}-{task_name(cfg.task)}") as parent:
        parent.params({"tune.samples": samples, "tune.search_space": {k: describe(v) for k, v in space.items()}})
        parent.metrics({f"best_{monitor}": _best_score(best, monitor), "trials_ok": len(ok)})
        for r in results:
            if r is best or r.config is None:
                continue
            trial_cfg = trial_config(cfg.model_dump(), r.config)
            with start_run(uri, trial_cfg, task, fp, "deep", parent.run_id, f"trial-{cfg.model.name}") as child:
                for row in _history(r):
                    child.epoch(row)
                if r.error:
                    child.tags({"cityagent.trial_error": str(r.error)[:500]})
                elif r in ran and r not in ok:
                    child.tags({"cityagent.trial_error": f"diverged: {monitor} was never finite"})
        best_cfg = trial_config(cfg.model_dump(), best.config)
        state, epoch, ckpt = _best_weights(best, monitor)
        out = TrainOutput(
            state,
            build_params(task, best_cfg.model, best_cfg.train.quantiles),
            _history(best),
            ckpt,
            epoch,
            {"mode": "tune", "workers": cfg.train.workers, "trials": len(results)},
        )
        with start_run(uri, best_cfg, task, fp, "deep", parent.run_id, f"best-{cfg.model.name}") as run:
            for row in out.history:
                run.epoch(row)
            result = report_trained(run, best_cfg, task, fp, out)
            run.tags({"cityagent.tune_best": "true"})
            diverged = divergence(result, best_cfg)
            if diverged:
                run.tags({"cityagent.diverged": diverged})
    result.info |= {"parent_run_id": parent.run_id, "best_config": dict(best.config)}
    if diverged:  # its best epoch was finite but the restored model's test metrics are not: FAILED, not exported
        run.end("FAILED")
        result.info.update(diverged=diverged, export="skipped (training diverged)")
        return result
    result.task = task
    log_drift_reference(result, uri)
    result.info["export"] = maybe_export(best_cfg, result.run_id)
    return result


make_callable(__name__, tune)
