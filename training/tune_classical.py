"""Hyperparameter search for the classical (scikit-learn) models with Ray Tune: each trial fits the model on the
training windows and reports its validation metrics once, so there is nothing for ASHA to stop early; the best
settings are then fitted and reported in full like any ``fit`` run (``train.refit`` included)."""

import uuid
from typing import Any

from cityagent.errors import CityAgentError, ConfigError
from cityagent.hub.protocols import TaskData
from cityagent.models.registry import model_info
from cityagent.training.classical import fit_classical
from cityagent.training.config import RunConfig
from cityagent.training.fit import FitResult, log_drift_reference, maybe_export, train_and_report
from cityagent.training.ray_cluster import storage_path
from cityagent.training.run_start import start_run
from cityagent.training.task import HubFingerprint, task_name
from cityagent.training.tune_trial import trial_config

# the validation metric a sweep ranks trials by, and whether higher is better, per domain (risk: GSNet's MAP@K,
# the ranking the risk table is judged on; otherwise the MAE the deep models are trained and stopped on)
MONITOR = {"traffic": ("val_mae", "min"), "demand": ("val_mae", "min"), "risk": ("val_map", "max")}


def classical_search_space(cfg: RunConfig) -> dict[str, Any]:
    """The boosting settings the model has: learning rate, leaves, leaf size and L2 regularisation."""
    from ray import tune

    params = model_info(cfg.model.name).params
    space = {
        "learning_rate": tune.loguniform(0.02, 0.3),
        "max_leaf_nodes": tune.choice([7, 15, 31, 63]),
        "min_samples_leaf": tune.choice([20, 50, 100, 200]),
        "l2_regularization": tune.choice([0.0, 0.1, 1.0]),
    }
    return {f"model.params.{k}": v for k, v in space.items() if k in params}


def _trial(config: dict[str, Any], task: TaskData, base: dict[str, Any], threads: int | None) -> None:
    """One trial: fit on the training windows (no refit: validation must stay unseen) and report validation."""
    from ray import tune

    cfg = trial_config(base, config | {"train.refit": False})
    if threads is not None:
        cfg.model.params["n_threads"] = threads  # as many OpenMP threads as the trial holds CPUs
    _, _, val = fit_classical(task, cfg)
    tune.report(val)


def tune_classical(
    cfg: RunConfig,
    task: TaskData,
    fp: HubFingerprint,
    uri: str,
    samples: int,
    space: dict[str, Any],
    max_concurrent: int | None,
) -> FitResult:
    """Search ``space`` over ``samples`` trials on the running Ray, log every trial under one parent run and fit
    the best settings in full (see ``tune.tune``)."""
    from ray import tune

    from cityagent.training.tune_progress import TrialLines

    if not len(task.val):
        raise ConfigError(
            f"tuning {cfg.model.name!r} ranks trials on validation windows, and the {cfg.task.protocol!r} task has "
            "none; pick a protocol with a validation split"
        )
    metric, mode = MONITOR[cfg.task.domain]
    cpus = cfg.train.cpus_per_worker
    threads = cpus if "n_threads" in model_info(cfg.model.name).params else None
    if max_concurrent is None:
        import ray

        max_concurrent = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus))
    trainable = tune.with_resources(
        tune.with_parameters(_trial, task=task, base=cfg.model_dump(), threads=threads), {"cpu": cpus}
    )
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            metric=metric, mode=mode, num_samples=samples, max_concurrent_trials=max_concurrent
        ),
        run_config=tune.RunConfig(
            name=f"tune-{cfg.model.name}-{uuid.uuid4().hex[:8]}",
            storage_path=storage_path(),
            verbose=0,  # Ray's tables off: one line per trial instead
            callbacks=[TrialLines(samples, metric, None, mode)],
        ),
    )
    results = list(tuner.fit())
    ok = [r for r in results if r.error is None and r.metrics and metric in r.metrics]
    if not ok:
        errors = "; ".join(str(r.error) for r in results if r.error is not None)[:2000]
        raise CityAgentError(f"every one of the {len(results)} trials failed: {errors}")
    best = (min if mode == "min" else max)(ok, key=lambda r: float(r.metrics[metric]))
    kind = "classical"
    with start_run(uri, cfg, task, fp, kind, run_name=f"tune-{cfg.model.name}-{task_name(cfg.task)}") as parent:
        parent.params({"tune.samples": samples, "tune.search_space": {k: str(v) for k, v in space.items()}})
        parent.metrics({f"best_{metric}": float(best.metrics[metric]), "trials_ok": len(ok)})
        for r in results:
            if r is best or r.config is None:
                continue
            trial_cfg = trial_config(cfg.model_dump(), r.config)
            with start_run(uri, trial_cfg, task, fp, kind, parent.run_id, f"trial-{cfg.model.name}") as child:
                child.metrics({k: float(v) for k, v in (r.metrics or {}).items() if k.startswith("val_")})
                child.tags({"cityagent.trial_error": str(r.error)[:500]} if r.error else {})
        best_cfg = trial_config(cfg.model_dump(), best.config)
        with start_run(uri, best_cfg, task, fp, kind, parent.run_id, f"best-{cfg.model.name}") as run:
            result = train_and_report(run, best_cfg, task, fp)
            run.tags({"cityagent.tune_best": "true"})
    result.info |= {
        "parent_run_id": parent.run_id,
        "best_config": dict(best.config),
        "trials": len(results),
        "workers": 0,
        "monitor": metric,
    }
    result.task = task
    log_drift_reference(result, uri)
    result.info["export"] = maybe_export(best_cfg, result.run_id)
    return result
