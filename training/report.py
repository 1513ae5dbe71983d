"""After training: score the test split, and log metrics, per-horizon table, plots and the model bundle."""

import csv
import inspect
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np

from cityagent import durations
from cityagent.hub.feature_facts import input_facts
from cityagent.hub.protocols import TaskData
from cityagent.models.registry import model_info
from cityagent.models.user_models import user_module
from cityagent.training.bundle import BUNDLE_FILE, ModelBundle
from cityagent.training.config import RunConfig
from cityagent.training.data import predict_split
from cityagent.training.metrics import median_level
from cityagent.training.plots import forecast_plot, loss_curve, risk_map
from cityagent.training.scoring import score
from cityagent.training.task import HubFingerprint, task_name
from cityagent.training.tracked_run import TrackedRun

UNITS = {"traffic": "km/h", "demand": "trips per step", "risk": "severity per cell and step"}
BUNDLE_DIR = "bundle"
SAMPLE_FILE = "sample.npz"  # x [S, T_in, N, F], y / mask / pred [S, H, N], real units


def task_units(cfg: RunConfig, task: TaskData) -> str:
    """The forecast's unit: the hub's own for its target where its importer recorded one, else the domain's."""
    return str(task.extra.get("units") or UNITS[cfg.task.domain])


def interval_calibration(cfg: RunConfig) -> str | None:
    """How the outer quantile levels were calibrated, for clients showing the interval; None without one."""
    if len(cfg.train.quantiles or []) < 2:
        return None
    if cfg.train.conformal:
        return "split conformal (CQR) on the validation split"
    if cfg.model.params.get("conformal"):
        default = inspect.signature(model_info(cfg.model.name).builder).parameters["conformal_frac"].default
        share = cfg.model.params.get("conformal_frac", default)
        return f"split conformal (CQR) on the newest {share:.0%} of the training windows"
    return "none: the quantile loss alone"


def bundle_meta(cfg: RunConfig, task: TaskData, fp: HubFingerprint, run_id: str, kind: str) -> dict[str, Any]:
    """Task facts serving needs (JSON types only)."""
    return {
        "task": task_name(cfg.task),
        "domain": cfg.task.domain,
        "dataset": cfg.task.dataset,
        "protocol": task.protocol,
        "nodes": list(task.nodes),
        "step": task.step,
        "input_len": task.input_len,
        "horizon": task.horizon,
        "input_offsets": list(task.spec.input_offsets),
        "target_offsets": list(task.spec.target_offsets),
        "feature_names": list(task.feature_names),
        "target": task.extra.get("target", task.feature_names[0]),
        "units": task_units(cfg, task),
        "quantiles": list(cfg.train.quantiles) if cfg.train.quantiles else None,
        "interval_calibration": interval_calibration(cfg),
        "eval_mask": [bool(v) for v in task.eval_mask],
        "run_id": run_id,
        "model_kind": kind,
        "model_module": cfg.model.module or user_module(cfg.model.name),  # where a model of the user's own lives
        "hub_fingerprint": fp.sha256,
        "grid": task.extra.get("grid"),
        **input_facts(task.feature_names, task.train.x, _zone(task)),
    }


def _zone(task: TaskData) -> str | None:
    """The IANA zone (or fixed offset) whose wall time the task's calendar channels follow; None when naive."""
    tz = task.train.times.tz
    return None if tz is None else str(tz)


def make_bundle(
    cfg: RunConfig,
    task: TaskData,
    fp: HubFingerprint,
    run_id: str,
    kind: str,
    state_dict: dict[str, Any],
    build_params: dict[str, Any],
) -> ModelBundle:
    return ModelBundle(
        model_name=cfg.model.name,
        build_params=build_params,
        state_dict=state_dict,
        x_scaler=task.x_scaler.to_dict(),
        y_scaler=task.y_scaler.to_dict(),
        meta=bundle_meta(cfg, task, fp, run_id, kind),
    )


def local_path(uri: str) -> Path | None:
    """The filesystem path of a ``file:`` (or plain path) artifact URI; None for remote stores."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    return Path(uri) if parsed.scheme == "" else None


def _horizon_csv(rows: Sequence[dict[str, float]], path: Path) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _sample(task: TaskData, pred: np.ndarray, path: Path, n: int = 8) -> Path:
    """A few real-unit test windows with their targets and this model's forecasts (export checks parity on them)."""
    idx = np.linspace(0, len(task.test) - 1, min(n, len(task.test))).astype(np.int64)
    x, y, mask = task.test.batch(idx)
    np.savez_compressed(path, x=x.astype(np.float32), y=y, mask=mask, pred=pred[idx].astype(np.float32))
    return path


def step_minutes(step: str) -> float:
    return durations.step_delta(step).total_seconds() / 60


def _plots(
    run: TrackedRun, cfg: RunConfig, task: TaskData, pred: np.ndarray, history: list[dict[str, float]], folder: Path
) -> None:
    _, y, mask = task.test.arrays()
    point = pred[..., median_level(cfg.train.quantiles)] if cfg.train.quantiles else pred
    hours = task.extra.get("operating_hours")  # k steps ahead may jump the closed night: count slots, not hours
    paths = [
        forecast_plot(
            task.test.target_times(),
            y,
            mask,
            pred,
            task.nodes,
            folder / "forecast.png",
            task.eval_mask,
            unit=task_units(cfg, task),
            leads=None if hours else [off * step_minutes(task.step) for off in task.spec.target_offsets],
            names=task.extra.get("node_names"),
            step_name="operating-hours slot" if hours else "step",
        ),
        loss_curve(history, folder / "loss.png"),
    ]
    if cfg.task.domain == "risk" and task.extra.get("grid"):
        paths.append(risk_map(y, point, task.extra["grid"], folder / "risk_map.png", task.eval_mask))
    for p in paths:
        if p is not None:
            run.artifact(p, "plots")


def report(
    run: TrackedRun,
    cfg: RunConfig,
    task: TaskData,
    predict: Callable[[np.ndarray], np.ndarray],
    bundle: ModelBundle,
    history: list[dict[str, float]],
    extra_files: Sequence[Path] = (),
) -> tuple[dict[str, float], str]:
    """Score ``predict`` on the test split and log everything; returns ``(test metrics, bundle location)``.

    Args:
        run: the MLflow run.
        cfg: the resolved config.
        task: the windows.
        predict: raw-unit ``x [B, T, N, F]`` → real-unit forecast.
        bundle: the model as saved (``bundle/model.pt``).
        history: per-epoch metrics (for the loss curve).
        extra_files: more files for the bundle folder (e.g. a classical estimator).
    """
    pred = predict_split(predict, task.test)
    metrics, rows = score(task, task.test, pred, cfg.task.domain, cfg.train.quantiles)
    metrics = {f"test_{k}": v for k, v in metrics.items()}
    run.metrics(metrics)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run.artifact(_horizon_csv(rows, folder / "per_horizon.csv"), "metrics")
        if cfg.tracking.plots:
            _plots(run, cfg, task, pred, history, folder)
        run.artifact(bundle.save(folder / BUNDLE_DIR / BUNDLE_FILE), BUNDLE_DIR)
        run.artifact(_sample(task, pred, folder / SAMPLE_FILE), BUNDLE_DIR)
        for path in extra_files:
            run.artifact(path, BUNDLE_DIR)
    uri = f"{run.artifact_uri.rstrip('/')}/{BUNDLE_DIR}/{BUNDLE_FILE}"
    path = local_path(uri)
    return metrics, str(path) if path is not None else uri
