"""``fit()``: the notebook and CLI entry point — config in, one tracked MLflow run and a model bundle out."""

import logging
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from cityagent.errors import CityAgentError, ConfigError
from cityagent.home import home_dir
from cityagent.hub.protocols import TaskData
from cityagent.models.registry import model_info
from cityagent.training.build import build_scaled_model, check_buildable
from cityagent.training.callable_module import make_callable
from cityagent.training.classical import ESTIMATOR_FILE, fit_classical
from cityagent.training.config import RunConfig
from cityagent.training.conformal import calibrate, check_conformal
from cityagent.training.data import torch_predictor
from cityagent.training.engine import TrainOutput, monitor_for
from cityagent.training.housekeeping import keep_sessions
from cityagent.training.overrides import ConfigLike, resolve_config
from cityagent.training.progress import EpochProgress, both
from cityagent.training.report import make_bundle, report
from cityagent.training.run_start import start_run
from cityagent.training.task import HubFingerprint, load_task
from cityagent.training.tracked_run import TrackedRun
from cityagent.training.tracking import check_server, tracking_uri

log = logging.getLogger(__name__)
UNSENSED = ("gsnet",)  # protocols whose input channels come from a benchmark file's own layout, not hub tables


@dataclass
class FitResult:
    """What ``fit`` returns.

    Args:
        metrics: test metrics in real units (``test_mae``, ``test_rmse``, ``test_mape``, per-horizon ``test_mae_h1``,
            protocol extras such as ``test_tgcn_accuracy`` or ``test_recall``).
        run_id: the MLflow run.
        checkpoint: the best training checkpoint (None for untrained baselines and classical models).
        bundle_path: the logged ``bundle/model.pt`` (a local path for local stores, else its URI).
        history: per-epoch metrics.
        info: how it ran (mode, workers, resumed_from_epoch, seconds, export outcome; ``diverged``: why, when
            training diverged and the run was marked FAILED and not exported).
        task: the task's windows it was trained and scored on (what `fit` read from the hub).
    """

    metrics: dict[str, float]
    run_id: str
    checkpoint: str | None
    bundle_path: str
    history: list[dict[str, float]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    task: TaskData | None = field(default=None, repr=False, compare=False)


def report_trained(run: TrackedRun, cfg: RunConfig, task: TaskData, fp: HubFingerprint, out: TrainOutput) -> FitResult:
    """Rebuild the best weights of a deep model, then score, plot and bundle it into ``run``."""
    model, _ = build_scaled_model(task, cfg.model, cfg.train.quantiles)
    model.load_state_dict(out.state_dict)
    if cfg.train.conformal:
        run.metrics(calibrate(model, task, cfg.train.quantiles or []))
    bundle = make_bundle(cfg, task, fp, run.run_id, "deep", model.state_dict(), out.build_params)
    run.metrics({"best_epoch": out.best_epoch})
    run.tags({"cityagent.mode": out.info.get("mode", "deep")})
    metrics, bundle_path = report(run, cfg, task, torch_predictor(model), bundle, out.history)
    return FitResult(metrics, run.run_id, out.checkpoint, bundle_path, out.history, out.info)


def train_and_report(
    run: TrackedRun,
    cfg: RunConfig,
    task: TaskData,
    fp: HubFingerprint,
    callbacks: Sequence[pl.Callback] = (),
    progress: bool = True,
) -> FitResult:
    """Train (deep: in-process or Ray; classical: scikit-learn; baseline: nothing) and report into ``run``; with
    ``progress``, a deep model's epochs are said as they end."""
    kind = model_info(cfg.model.name).kind
    if kind == "deep":
        # each epoch is logged to the run and said on the console as it ends (rank 0's, for Ray runs)
        on_epoch = run.epoch
        if progress:
            on_epoch = both(run.epoch, EpochProgress(cfg.model.name, cfg.train.max_epochs, monitor_for(task)))
        if cfg.train.workers == 0:
            from cityagent.training.local import train_local

            out = train_local(task, cfg, home_dir() / "checkpoints" / run.run_id, callbacks, on_epoch=on_epoch)
        else:
            from cityagent.training.ray_job import train_ray

            # logged from the driver while it trains: the MLflow run shows progress, and a tracking server that dies
            # mid-run stops the workers after their epoch instead of at the end
            out = train_ray(
                task, cfg, name=f"{cfg.model.name}-{run.run_id[:12]}", callbacks=callbacks, on_epoch=on_epoch
            )
        return report_trained(run, cfg, task, fp, out)
    run.tags({"cityagent.mode": kind})
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "classical":
            predict, params, val = fit_classical(task, cfg)
            run.metrics(val)
            extra = [predict.save(Path(tmp) / ESTIMATOR_FILE)]
            bundle = make_bundle(cfg, task, fp, run.run_id, kind, {}, params)
            bundle.meta["estimator"] = ESTIMATOR_FILE
        else:  # a parameter-free baseline: nothing to train
            model, params = build_scaled_model(task, cfg.model, cfg.train.quantiles)
            predict, extra = torch_predictor(model), []
            bundle = make_bundle(cfg, task, fp, run.run_id, kind, model.state_dict(), params)
        metrics, bundle_path = report(run, cfg, task, predict, bundle, [], extra)
    return FitResult(metrics, run.run_id, None, bundle_path, [], {"mode": kind})


def check_device(cfg: RunConfig, kind: str) -> None:
    """A deep run on ``train.accelerator=gpu`` in-process or on a local Ray needs the GPUs here, before its MLflow
    run opens (a cluster named by ``RAY_ADDRESS`` or ``train.address`` is checked when the run connects to it)."""
    if kind != "deep" or cfg.train.accelerator != "gpu":
        return
    import torch

    from cityagent.training.ray_cluster import ray_address

    if cfg.train.workers > 0 and ray_address(cfg.train.address):
        return
    need, have = max(cfg.train.workers, 1), torch.cuda.device_count()
    if have < need:
        build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a CPU-only build")
        raise ConfigError(
            f"train.accelerator=gpu needs {need} GPU(s) (one per worker), but torch sees {have} on this machine "
            f"({build}); use train.accelerator=cpu, fewer --workers, or RAY_ADDRESS of a cluster that has GPUs"
        )


def divergence(result: FitResult, cfg: RunConfig) -> str | None:
    """Why a deep run's model is unusable because training diverged (NaN/inf validation loss or test metrics)."""
    losses = [row["val_loss"] for row in result.history if "val_loss" in row]
    if not losses or (any(math.isfinite(v) for v in losses) and math.isfinite(result.metrics.get("test_mae", 0.0))):
        return None  # baselines and classical models have no epochs; a finite best epoch is a usable model
    return (
        f"training diverged: the model's outputs are NaN/inf (validation loss {losses[-1]:.4g} at epoch "
        f"{len(losses)}), so run {result.run_id} is marked FAILED and not exported; lower train.lr (now "
        f"{cfg.train.lr:g}) or check the data"
    )


def maybe_export(cfg: RunConfig, run_id: str) -> str:
    """Export and register the run when asked and when ``cityagent.training.export`` is available."""
    if not cfg.tracking.register_model:
        return "skipped (tracking.register_model=false)"
    try:
        from cityagent.training.export import export_run
    except ImportError:
        log.info("cityagent.training.export is not available; run %s was not exported or registered", run_id)
        return "skipped (cityagent.training.export not available)"
    try:
        exported = export_run(run_id, tracking_uri=tracking_uri(cfg.tracking.tracking_uri))
        done = f"done: {exported.model_uri}"
        if exported.version is None:
            return done
        already = "already " if exported.already_registered else ""
        return f"{done} ({already}registered {exported.name} v{exported.version} as challenger)"
    except CityAgentError as e:  # the run itself is fine; say why it is not served
        log.warning("run %s trained but was not exported: %s", run_id, e)
        return f"failed: {e}"


def log_drift_reference(result: FitResult, uri: str, bins: int | None = None) -> None:
    """Log the training data's summary the agent's drift watch compares live inputs with (``drift_reference.json``),
    so every trained model, not only a retrained one, has its drift checked once it serves. A reference that cannot
    be written costs a warning, not the run."""
    from mlflow.exceptions import MlflowException

    from cityagent.agent.agent_config import DriftConfig
    from cityagent.agent.retrain import log_reference  # the agent layer owns drift; imported when used

    if result.task is not None and result.task.protocol in UNSENSED:  # said once, quietly: nothing is wrong
        log.info(
            "run %s: no drift reference: the %s protocol's channels are built by its importer, not read from the "
            "hub as the agent reads live inputs, so the agent does not serve or watch this model",
            result.run_id,
            result.task.protocol,
        )
        return
    try:
        log_reference(result.run_id, result.task, result.metrics, bins or DriftConfig().bins, uri)
    except (CityAgentError, OSError, MlflowException, KeyError, ValueError) as e:
        log.warning("run %s: no drift reference logged (%s); the agent will not check its drift", result.run_id, e)


def fit(
    config: ConfigLike = None, *, callbacks: Sequence[pl.Callback] = (), progress: bool = True, **overrides: Any
) -> FitResult:
    """Train, evaluate and track one model.

    Args:
        config: a ``RunConfig``, a dict of sections, a YAML path (see configs/), or None for defaults.
        callbacks: extra Lightning callbacks for deep models (pickled to Ray workers).
        progress: say each epoch of a deep model as it ends (losses, time, an upper bound of the time left).
        **overrides: ``train__max_epochs=3``, ``**{"model.name": "tgcn"}`` or ``train={"workers": 0}``.

    Returns:
        FitResult with the test metrics, MLflow run id, best checkpoint and bundle location.

    Raises:
        ConfigError: unknown model (valid ones listed), dataset, protocol or parameter.
        CityAgentError: an unreachable MLflow server or Ray cluster, named, before any training.
    """
    cfg = resolve_config(config, overrides)
    kind = model_info(cfg.model.name).kind  # an unknown name fails here, before any data is read
    check_conformal(cfg, kind)
    check_device(cfg, kind)
    if kind == "deep" and cfg.train.workers > 0:
        keep_sessions()  # a bad $CITYAGENT_RAY_KEEP_SESSIONS is refused before the run opens
    if cfg.train.refit and kind == "deep":
        raise ConfigError(
            f"train.refit applies to classical models; {cfg.model.name!r} is a deep model, whose early stopping "
            "needs validation held out. Drop train.refit, or pick a classical model such as 'gbrt'."
        )
    if kind == "deep" and cfg.train.quantiles and cfg.train.loss != "quantile":  # else refused after the run opened
        raise ConfigError(
            f"config key 'train.loss': a deep model learns train.quantiles={cfg.train.quantiles} only with "
            f"train.loss=quantile (got {cfg.train.loss!r}); set train.loss=quantile, or drop train.quantiles"
        )
    uri = tracking_uri(cfg.tracking.tracking_uri)
    check_server(uri)
    if kind == "deep" and cfg.train.workers > 0:
        from cityagent.training.ray_cluster import check_reachable, ray_address

        address = ray_address(cfg.train.address)
        if address:
            check_reachable(address)
    task, fp = load_task(cfg.task)
    check_buildable(task, cfg.model, cfg.train.quantiles, cfg.task.domain)
    with start_run(uri, cfg, task, fp, kind) as run:
        result = train_and_report(run, cfg, task, fp, callbacks, progress)
        diverged = divergence(result, cfg)
        if diverged:
            run.tags({"cityagent.diverged": diverged})
    if diverged:  # recorded, but FAILED: a model forecasting NaN is not one to compare, export or serve
        run.end("FAILED")
        result.info.update(diverged=diverged, export="skipped (training diverged)")
        return result
    result.task = task
    log_drift_reference(result, uri)
    result.info["export"] = maybe_export(cfg, result.run_id)
    log.info("run %s: %s", result.run_id, {k: round(v, 4) for k, v in result.metrics.items() if "_h" not in k})
    return result


make_callable(__name__, fit)
