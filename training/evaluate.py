"""Re-evaluate a logged run: reload its bundle and config from MLflow and score the task's test split again."""

import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cityagent import durations
from cityagent.config_yaml import parse_yaml
from cityagent.downloads import quiet_downloads, run_folder
from cityagent.errors import CityAgentError
from cityagent.home import home_dir
from cityagent.hub.hub import MANIFEST
from cityagent.hub.protocols import TaskData
from cityagent.training.bundle import BUNDLE_FILE, ModelBundle
from cityagent.training.classical import ESTIMATOR_FILE, ClassicalPredictor
from cityagent.training.config import RunConfig, TaskConfig, load_config
from cityagent.training.data import predict_split, torch_predictor
from cityagent.training.report import BUNDLE_DIR
from cityagent.training.scoring import score
from cityagent.training.task import OtherDataset, load_task
from cityagent.training.tracking import client_for

log = logging.getLogger(__name__)


def bundle_predictor(bundle: ModelBundle, folder: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """Raw-unit ``x`` → real-unit forecast for a bundle (a joblib estimator beside it for classical models)."""
    if bundle.meta.get("estimator"):
        return ClassicalPredictor.load(Path(folder) / bundle.meta.get("estimator", ESTIMATOR_FILE))
    return torch_predictor(bundle.build())


def load_run(
    run_id: str, tracking_uri: str | None = None, dst: str | Path | None = None
) -> tuple[ModelBundle, RunConfig, Path]:
    """``(bundle, resolved config, local bundle folder)`` of a logged run.

    Args:
        run_id: a full MLflow run id or a unique prefix of one (at least 6 characters).
        tracking_uri: the store (default: ``MLFLOW_TRACKING_URI`` or the sqlite store under CITYAGENT_HOME).
        dst: where to download the run's files; the caller owns it. Default: cityagent's folder for the run,
            ``$CITYAGENT_HOME/downloads/<run id>``, replaced by each load of the run (so calls leave no folders
            behind); a classical model's estimator is read from it, so keep it while you predict.

    Raises:
        CityAgentError: the run does not exist, the prefix is ambiguous, or the run has no bundle (did it finish?),
            or a corrupt one (named as ``runs:/<id>/bundle/model.pt``).
    """
    from cityagent.training.run_ids import resolve_run_id

    client = client_for(tracking_uri)
    run_id = resolve_run_id(client, run_id)  # a unique prefix (as `cityagent models list` shows) is enough
    if dst is None:
        dst = run_folder(run_id)
        shutil.rmtree(dst, ignore_errors=True)  # the run's files afresh: nothing of an earlier load is mixed in
    Path(dst).mkdir(parents=True, exist_ok=True)
    try:
        with quiet_downloads():
            folder = Path(client.download_artifacts(run_id, BUNDLE_DIR, str(dst)))
            cfg_file = Path(client.download_artifacts(run_id, "config.yaml", str(dst)))
    except Exception as e:
        raise CityAgentError(
            f"run {run_id} has no {BUNDLE_DIR}/ or config.yaml artifacts; was it trained to the end by cityagent?"
        ) from e
    bundle = ModelBundle.load(folder / BUNDLE_FILE, source=f"runs:/{run_id}/{BUNDLE_DIR}/{BUNDLE_FILE}")
    return bundle, load_config(None, None, **parse_yaml(cfg_file.read_text())), folder


def run_hub(run_id: str, cfg: RunConfig, tracking_uri: str | None = None, hub: str | None = None) -> RunConfig:
    """``cfg`` with ``task.hub`` set to where the run's data is: ``hub`` if given, else the hub the run read.

    A run on the default synthetic city logged ``task.hub: null``; read as is, that is whatever city sits under
    *this* ``$CITYAGENT_HOME`` (synthesised there if none), so the hub the run recorded reading is used instead.

    Raises:
        CityAgentError: that hub is not here (pass ``hub``).
    """
    if hub is not None:
        return cfg.model_copy(update={"task": cfg.task.model_copy(update={"hub": TaskConfig.absolute(hub)})})
    recorded = cfg.task.hub
    if recorded is not None and ":***@" in recorded:  # logged with its password masked (run_start.shareable)
        raise CityAgentError(
            f"run {run_id} read the hub {recorded}, whose password is not kept with the run; pass the URL with "
            "--hub (or give the password by environment, e.g. PGPASSWORD, and --hub without it)"
        )
    if recorded is not None and "://" not in recorded and not Path(recorded).exists():
        raise CityAgentError(
            f"run {run_id} read the hub at {recorded}, which is not on this machine; pass a copy of it (or newer "
            "data of the same nodes) with --hub DIR"
        )
    if recorded is not None or cfg.task.dataset != "synthetic":
        return cfg
    source = client_for(tracking_uri).get_run(run_id).data.params.get("data.source")
    if not source or not Path(source, MANIFEST).is_file():
        raise CityAgentError(
            f"run {run_id} was trained on the synthetic city at {source or 'an unrecorded location'}, which is not "
            "here; pass the hub to evaluate on with --hub DIR (python: evaluate_run(run_id, hub=DIR))"
        )
    return cfg.model_copy(update={"task": cfg.task.model_copy(update={"hub": source})})


def _step_difference(model_step: object, hub_step: str) -> str | None:
    """``model step 5min, hub step 15min`` when the steps differ (as durations: ``5min`` equals ``300s``)."""
    if model_step is None:
        return None
    try:
        same = durations.step_delta(str(model_step)) == durations.step_delta(hub_step)
    except ValueError:
        same = str(model_step) == hub_step
    return None if same else f"model step {model_step}, hub step {hub_step}"


def check_input(run_id: str, bundle: ModelBundle, task: TaskData, where: str) -> None:
    """Raise when the task's windows are not what the model takes: other nodes, features, window length, step, or
    window offsets (a daily period of 18 slots is not one of 24): scores on them would describe no real forecast."""
    from cityagent.training.registry.contract import input_differences

    have = {"nodes": list(task.nodes), "feature_names": list(task.feature_names), "input_len": task.spec.input_len}
    diffs = input_differences({k: bundle.meta[k] for k in have if k in bundle.meta}, have)
    step = _step_difference(bundle.meta.get("step"), task.step)
    diffs += [step] if step else []
    if not step:  # with another step every offset means other times anyway; name the step alone then
        for key, offsets in (("input_offsets", task.spec.input_offsets), ("target_offsets", task.spec.target_offsets)):
            if key in bundle.meta and list(bundle.meta[key]) != list(offsets):
                diffs.append(f"{key} {list(bundle.meta[key])} instead of {list(offsets)}")
    if diffs:
        raise CityAgentError(
            f"run {run_id}'s model takes another input than the hub {where} gives ({'; '.join(diffs)}, model first); "
            "evaluate it on the hub it was trained on (--hub DIR)"
        )


def evaluate_run(run_id: str, tracking_uri: str | None = None, hub: str | None = None) -> dict[str, float]:
    """Test metrics of a logged run, recomputed from its bundle on its task's test split (``evaluate_with_meta``,
    without the bundle's metadata)."""
    return evaluate_with_meta(run_id, tracking_uri, hub)[0]


def evaluate_with_meta(
    run_id: str, tracking_uri: str | None = None, hub: str | None = None
) -> tuple[dict[str, float], dict]:
    """Test metrics of a logged run, recomputed from its bundle on its task's test split.

    Args:
        run_id: an MLflow run id (``FitResult.run_id``, printed by ``cityagent train``) or a unique prefix of one.
        tracking_uri: the store (default: ``MLFLOW_TRACKING_URI`` or the sqlite store under CITYAGENT_HOME).
        hub: evaluate on this hub instead of the one the run was trained on (e.g. a copy, or newer data of the
            same sensors).

    Returns:
        ``({"test_mae": ..., ...}, bundle metadata)``: the names ``fit`` logged, and the model's facts (step, target
        offsets, units) for labelling them, from the one download.

    Raises:
        CityAgentError: the run, its hub, or a hub whose windows the model cannot take (nodes, features, length,
            step, window offsets).
    """
    # the downloaded model lives only while it scores: under CITYAGENT_HOME, removed after (not left in /tmp)
    with tempfile.TemporaryDirectory(prefix="evaluate-", dir=home_dir()) as tmp:
        return _evaluate(run_id, tracking_uri, hub, Path(tmp))


def _evaluate(run_id: str, tracking_uri: str | None, hub: str | None, tmp: Path) -> tuple[dict[str, float], dict]:
    bundle, cfg, folder = load_run(run_id, tracking_uri, tmp)  # resolves a unique prefix, as `models list` shows it
    run_id = bundle.meta.get("run_id") or run_id  # the full id, for the lookups below
    cfg = run_hub(run_id, cfg, tracking_uri, hub)
    try:
        task, fp = load_task(cfg.task)
    except OtherDataset as e:  # its advice (set task.dataset) is for training; here the data is what is wrong
        raise CityAgentError(
            f"run {run_id} was trained on {cfg.task.dataset!r}, but the hub {cfg.task.hub} holds {e.held}, "
            f"{e.what}: evaluate it on the data it was trained on, or on newer data of the same city and nodes "
            "(hub=DIR, --hub DIR)"
        ) from None
    check_input(run_id, bundle, task, fp.source)
    if fp.sha256 != bundle.meta.get("hub_fingerprint"):
        log.warning(
            "run %s was trained on data with fingerprint %s but the hub now gives %s; the metrics "
            "describe the current data",
            run_id,
            str(bundle.meta.get("hub_fingerprint"))[:12],
            fp.short,
        )
    pred = predict_split(bundle_predictor(bundle, folder), task.test)
    metrics, _ = score(task, task.test, pred, cfg.task.domain, cfg.train.quantiles)
    return {f"test_{k}": v for k, v in metrics.items()}, dict(bundle.meta)
