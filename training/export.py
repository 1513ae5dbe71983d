"""Export a training run to ONNX, log it into the same MLflow run, register it and make it the challenger.

The run's ``bundle/model.pt`` is rebuilt, exported and checked for parity on ``bundle/sample.npz`` (real
test windows) when the run has one. Parity failure raises ExportError before anything is logged or
registered. A run already registered with the very same ONNX file (its SHA-256 is a version tag) is not
registered again: its existing version is returned, once its stored file is checked against that tag (a version
whose stored file was corrupted or replaced gets a new version instead, so re-exporting is a fix that works).
"""

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version as pkg_version
from pathlib import Path

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.tracking._tracking_service import utils as tracking_utils
from mlflow.types import Schema, TensorSpec

from cityagent.downloads import quiet_downloads
from cityagent.errors import CityAgentError
from cityagent.home import home_dir
from cityagent.onnx_digest import DIGEST_TAG, file_sha256
from cityagent.training.bundle import BUNDLE_FILE, ModelBundle
from cityagent.training.classical import ClassicalPredictor
from cityagent.training.onnx_export import OnnxExport, build_onnx, export_bundle
from cityagent.training.onnx_meta import INPUT_NAME, OUTPUT_NAME
from cityagent.training.parity import ExportError
from cityagent.training.registry import get_client, resolve_tracking_uri, set_alias
from cityagent.training.registry.aliases import check_alias
from cityagent.training.registry.store import is_not_found
from cityagent.training.run_ids import resolve_run_id

BUNDLE_DIR = "bundle"
SAMPLE_FILE = "sample.npz"  # real-unit test windows: x [S, T_in, N, F], y [S, H, N]
ONNX_NAME = "onnx"

__all__ = ["DIGEST_TAG", "ExportError", "ExportResult", "export_bundle", "export_run"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    """What ``export_run`` produced.

    Args:
        version: the registered model version, or None when not registered.
        model_uri: ``models:/<task>/<version>`` when registered, else the logged model's ``models:/<model_id>``.
        onnx_path: a local copy of the ONNX file (under ``$CITYAGENT_HOME/exports/<run_id>/``).
        parity: relative difference torch vs ONNX Runtime on the sample windows.
        name: the registered model (the task), or None when not registered.
        already_registered: the run was registered before with this very ONNX file, so ``version`` is that
            existing version and nothing new was logged or registered.
        already_logged: (``register=False``) the run already holds a logged model of this very ONNX file, so
            ``model_uri`` is that one and nothing new was logged.
        differs_from: earlier versions of the same run whose ONNX file differs from this export (exported by
            another cityagent or torch version), which is why a new version was registered.
        damaged: earlier versions of the same run whose stored ONNX file cannot be read or no longer matches the
            SHA-256 recorded at export (corrupted or replaced), which is why a new version was registered.
    """

    version: str | None
    model_uri: str
    onnx_path: Path
    parity: float
    name: str | None = None
    already_registered: bool = False
    differs_from: tuple[str, ...] = ()
    already_logged: bool = False
    damaged: tuple[str, ...] = ()


def _runtime_requirements() -> list[str]:
    """Exactly what loading the logged ONNX model needs (explicit, so MLflow does not guess)."""
    return [f"{p}=={pkg_version(p)}" for p in ("mlflow", "onnx", "onnxruntime", "numpy")]


def _signature(exported: OnnxExport) -> ModelSignature:
    out_shape = tuple(exported.model.graph.output[0].type.tensor_type.shape.dim)
    shape_y = tuple(-1 if d.dim_param else d.dim_value for d in out_shape)
    shape_x = (-1, *exported.sample.shape[1:])
    f32 = np.dtype(np.float32)
    return ModelSignature(
        inputs=Schema([TensorSpec(f32, shape_x, INPUT_NAME)]), outputs=Schema([TensorSpec(f32, shape_y, OUTPUT_NAME)])
    )


def _fetch_bundle(
    client: MlflowClient, run_id: str, dst: Path
) -> tuple[ModelBundle, np.ndarray | None, ClassicalPredictor | None]:
    """Download ``bundle/model.pt`` (``bundle/sample.npz`` when there, and a classical model's estimator)."""
    names = {Path(a.path).name for a in client.list_artifacts(run_id, BUNDLE_DIR)}
    if BUNDLE_FILE not in names:
        raise ExportError(f"run {run_id} has no {BUNDLE_DIR}/{BUNDLE_FILE} artifact; was it trained to the end?")
    with quiet_downloads():
        path = Path(client.download_artifacts(run_id, f"{BUNDLE_DIR}/{BUNDLE_FILE}", str(dst)))
    try:
        bundle = ModelBundle.load(path, source=f"runs:/{run_id}/{BUNDLE_DIR}/{BUNDLE_FILE}")
    except CityAgentError as e:
        raise ExportError(str(e)) from e
    estimator = None
    if bundle.meta.get("estimator"):
        name = str(bundle.meta["estimator"])
        if name not in names:
            raise ExportError(f"run {run_id} has no {BUNDLE_DIR}/{name}, the fitted estimator; retrain it.")
        try:
            with quiet_downloads():
                got = client.download_artifacts(run_id, f"{BUNDLE_DIR}/{name}", str(dst))
            estimator = ClassicalPredictor.load(got)
        except Exception as e:  # joblib raises whatever unpickling a damaged file raises
            raise ExportError(
                f"run {run_id}: {BUNDLE_DIR}/{name} is unreadable ({e.__class__.__name__}); retrain."
            ) from e
    if SAMPLE_FILE not in names:
        return bundle, None, estimator
    with quiet_downloads():
        sample = Path(client.download_artifacts(run_id, f"{BUNDLE_DIR}/{SAMPLE_FILE}", str(dst)))
    try:
        with np.load(sample) as npz:
            return bundle, npz["x"], estimator
    except (OSError, KeyError, ValueError) as e:
        raise ExportError(f"run {run_id}: {BUNDLE_DIR}/{SAMPLE_FILE} is unreadable or lacks 'x' ({e}).") from e


@contextmanager
def _global_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's global tracking URI at ``uri`` meanwhile, then restore it AND $MLFLOW_TRACKING_URI exactly.

    ``mlflow.onnx.log_model`` and the registry store resolve logged models through the global URI; MLflow's own
    ``set_tracking_uri(None)`` would also delete the environment variable, so it is put back by hand.
    """
    old_env, old_global = os.environ.get("MLFLOW_TRACKING_URI"), getattr(tracking_utils, "_tracking_uri", None)
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(old_global)
        if old_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_env


def _log_onnx(client: MlflowClient, run_id: str, exported: OnnxExport, tags: dict[str, str]) -> ModelInfo:
    """Log the ONNX model into the training run as a logged model named ``onnx`` (in the run's experiment)."""
    run = client.get_run(run_id)
    logged = client.create_logged_model(run.info.experiment_id, name=ONNX_NAME, source_run_id=run_id, tags=tags)
    return mlflow.onnx.log_model(
        exported.model,
        name=ONNX_NAME,
        model_id=logged.model_id,
        run_id=run_id,
        signature=_signature(exported),
        input_example={INPUT_NAME: exported.sample[:1]},
        pip_requirements=_runtime_requirements(),
        onnx_execution_providers=["CPUExecutionProvider"],
        save_as_external_data=False,
        registered_model_name=None,
    )


def _logged_same(client: MlflowClient, run_id: str, digest: str) -> str | None:
    """The ``models:/<model_id>`` of a finished ONNX model logged into ``run_id`` with this very file, if any."""
    experiment = client.get_run(run_id).info.experiment_id
    found = client.search_logged_models([experiment], filter_string=f"source_run_id = '{run_id}'")
    for lm in found:
        if lm.name == ONNX_NAME and lm.tags.get(DIGEST_TAG) == digest and str(lm.status) == "READY":
            return f"models:/{lm.model_id}"
    return None  # a log that failed half-way (PENDING / FAILED) is not reused


def _registered_digest(mv: ModelVersion, uri: str) -> tuple[str | None, str | None]:
    """The SHA-256 of version ``mv``'s stored ONNX file, or None and why it cannot stand for any export.

    The stored file itself is hashed, not only the tag read: promote and serving refuse a file whose digest differs
    from its tag and advise a re-export, which must then register a new version rather than answer with the
    broken one.
    """
    try:
        with tempfile.TemporaryDirectory() as tmp, _global_tracking_uri(uri), quiet_downloads():
            local = mlflow.artifacts.download_artifacts(f"models:/{mv.name}/{mv.version}", dst_path=tmp)
            actual = file_sha256(Path(local, "model.onnx"))
    except (MlflowException, OSError) as e:
        return None, f"its stored model.onnx cannot be read ({str(e).strip().splitlines()[0] if str(e).strip() else e})"
    recorded = mv.tags.get(DIGEST_TAG)
    if recorded and recorded != actual:
        return None, "its stored model.onnx does not match the SHA-256 recorded at export (corrupted or replaced)"
    return actual, None  # an untagged version (registered before the tag): its file's own digest


def _earlier_versions(
    client: MlflowClient, uri: str, task: str, run_id: str, digest: str
) -> tuple[str | None, list[str], dict[str, str]]:
    """The newest version of ``task`` from ``run_id`` with this very ONNX file (else None), the run's other versions
    whose file differs, and those whose stored file is damaged (version → why)."""
    found = [mv for mv in client.search_model_versions(f"run_id = '{run_id}'") if mv.name == task]
    found.sort(key=lambda mv: int(mv.version), reverse=True)
    differs, damaged = [], {}
    for mv in found:
        stored, why = _registered_digest(mv, uri)
        if stored == digest:
            return str(mv.version), [], {}
        if why is None:
            differs.append(str(mv.version))
        else:
            damaged[str(mv.version)] = why
    return None, sorted(differs, key=int), dict(sorted(damaged.items(), key=lambda kv: int(kv[0])))


def _register(client: MlflowClient, task: str, domain: str, info: ModelInfo, tags: dict[str, str]) -> str:
    """A new version of registered model ``task`` (created on first use); returns the version number."""
    try:
        client.get_registered_model(task)
    except MlflowException as e:
        if not is_not_found(e):
            raise
        client.create_registered_model(
            task, tags={"cityagent.domain": domain}, description=f"cityagent task {task}: one version per export"
        )
    mv = client.create_model_version(task, source=info.model_uri, run_id=info.run_id, model_id=info.model_id, tags=tags)
    return str(mv.version)


def export_run(
    run_id: str,
    *,
    tracking_uri: str | None = None,
    register: bool = True,
    alias: str | None = "challenger",
    tolerance: float = 1e-4,
    actor: str | None = None,
) -> ExportResult:
    """Export run ``run_id`` to ONNX, log it into that run as ``onnx``, register it and set ``alias``.

    A run already registered under its task with the very same ONNX file (as ``cityagent train`` registers it) gets
    no new logged model or version: that version is returned (``already_registered``), with ``alias`` moved to it
    when not there yet. One whose earlier versions hold another file (exported by another cityagent or torch
    version) gets a new version, which ``differs_from`` explains; so does one whose registered file is damaged in the
    artifact store (unreadable, or no longer matching its SHA-256 tag), which ``damaged`` and a warning explain.

    Args:
        run_id: an MLflow training run with a ``bundle/model.pt`` artifact (and ideally ``bundle/sample.npz``):
            its full id or a unique prefix of it (at least 6 characters).
        tracking_uri: MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite under CITYAGENT_HOME).
        register: create a version under the registered model named by the bundle's ``meta['task']``.
        alias: alias to point at the new version (the move is recorded in the history); None sets none.
        tolerance: largest allowed relative difference torch vs ONNX Runtime.
        actor: who exports, for the history (default $USER).

    Raises:
        ExportError: a missing run or bundle, an ambiguous run id prefix, a corrupt bundle, or failed parity;
            nothing is logged then.
    """
    if register and alias:
        check_alias(alias)
    uri = resolve_tracking_uri(tracking_uri)
    client = get_client(uri)
    try:
        run_id = resolve_run_id(client, run_id)  # a unique prefix (as `cityagent models list` shows) is enough
    except CityAgentError as e:
        raise ExportError(str(e)) from e
    with tempfile.TemporaryDirectory() as tmp:
        bundle, sample_x, estimator = _fetch_bundle(client, run_id, Path(tmp))
    exported = build_onnx(bundle, sample_x, tolerance, estimator)  # parity failure raises here, before any write
    task = str(bundle.meta["task"])
    local = home_dir() / "exports" / run_id / "model.onnx"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(exported.to_bytes())
    digest = hashlib.sha256(exported.to_bytes()).hexdigest()
    same, differs, damaged = _earlier_versions(client, uri, task, run_id, digest) if register else (None, [], {})
    if same is not None:
        _set_alias(task, same, alias, run_id, actor, uri)
        return ExportResult(same, f"models:/{task}/{same}", local, exported.parity, task, already_registered=True)
    logged = None if register else _logged_same(client, run_id, digest)
    if logged is not None:  # `export --no-register` run again: the same file is in the run already
        return ExportResult(None, logged, local, exported.parity, already_logged=True)

    tags = {
        "cityagent.task": task,
        "cityagent.model": bundle.model_name,
        "cityagent.parity": f"{exported.parity:.3g}",
        DIGEST_TAG: digest,
    }
    with _global_tracking_uri(uri):
        info = _log_onnx(client, run_id, exported, tags)
        client.log_metric(run_id, "onnx_parity_rel_diff", exported.parity)
        client.log_metric(run_id, "onnx_size_mb", local.stat().st_size / 2**20)
        if not register:
            return ExportResult(None, info.model_uri, local, exported.parity)
        version = _register(client, task, str(bundle.meta["domain"]), info, tags)
    for old, why in damaged.items():  # said here: the CLI explains only `differs_from`
        log.warning("%s v%s (run %s): %s, so this export is registered as v%s", task, old, run_id, why, version)
    _set_alias(task, version, alias, run_id, actor, uri)
    return ExportResult(
        version,
        f"models:/{task}/{version}",
        local,
        exported.parity,
        task,
        differs_from=tuple(differs),
        damaged=tuple(damaged),
    )


def _set_alias(task: str, version: str, alias: str | None, run_id: str, actor: str | None, uri: str) -> None:
    """Point ``alias`` at the export (no move, and no history entry, when it already points there)."""
    if alias:
        set_alias(
            task, version, alias, reason=f"exported from run {run_id}", actor=actor, action="export", tracking_uri=uri
        )
