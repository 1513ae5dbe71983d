"""Re-evaluate a logged run: reload its bundle and config from MLflow and score the task's test split again."""

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from cityagent.errors import CityAgentError
from cityagent.training.bundle import BUNDLE_FILE, ModelBundle
from cityagent.training.classical import ESTIMATOR_FILE, ClassicalPredictor
from cityagent.training.config import RunConfig, load_config
from cityagent.training.data import predict_split, torch_predictor
from cityagent.training.report import BUNDLE_DIR
from cityagent.training.scoring import score
from cityagent.training.task import load_task
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

    Raises:
        CityAgentError: the run does not exist or has no bundle (did it finish?).
    """
    client = client_for(tracking_uri)
    try:
        client.get_run(run_id)
    except Exception as e:  # MlflowException: RESOURCE_DOES_NOT_EXIST
        raise CityAgentError(
            f"no MLflow run {run_id!r} at {client.tracking_uri}; check the id (cityagent "
            f"train prints it) or the tracking URI"
        ) from e
    dst = Path(dst or tempfile.mkdtemp(prefix="cityagent-eval-"))
    try:
        folder = Path(client.download_artifacts(run_id, BUNDLE_DIR, str(dst)))
        cfg_file = Path(client.download_artifacts(run_id, "config.yaml", str(dst)))
    except Exception as e:
        raise CityAgentError(
            f"run {run_id} has no {BUNDLE_DIR}/ or config.yaml artifacts; was it trained to the end by cityagent?"
        ) from e
    bundle = ModelBundle.load(folder / BUNDLE_FILE)
    return bundle, load_config(None, None, **yaml.safe_load(cfg_file.read_text())), folder


def evaluate_run(run_id: str, tracking_uri: str | None = None) -> dict[str, float]:
    """Test metrics of a logged run, recomputed from its bundle on its task's test split.

    Args:
        run_id: an MLflow run id (``FitResult.run_id``, printed by ``cityagent train``).
        tracking_uri: the store (default: ``MLFLOW_TRACKING_URI`` or the sqlite store under CITYAGENT_HOME).

    Returns:
        ``{"test_mae": ..., ...}``, the same names ``fit`` logged.
    """
    bundle, cfg, folder = load_run(run_id, tracking_uri)
    task, fp = load_task(cfg.task)
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
    return {f"test_{k}": v for k, v in metrics.items()}
