"""Where model versions come from: the MLflow registry (by alias or version) or a local .onnx file.

A source answers two questions: which version is current (cheap, asked on every poll) and where its .onnx file
is (a download for the registry). Both are blocking calls; the store runs them in a thread.
"""

import hashlib
import os
import tempfile
from pathlib import Path

import yaml

from cityagent.downloads import quiet_downloads
from cityagent.home import home_dir
from cityagent.onnx_digest import digest_mismatch, mismatch_message
from cityagent.serving.errors import ModelLoadError
from cityagent.serving.spec import ModelSpec
from cityagent.store_check import bound_http_retries, store_problem


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """`tracking_uri`, else $MLFLOW_TRACKING_URI, else sqlite:///$CITYAGENT_HOME/mlflow.db (as training does)."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home_dir() / 'mlflow.db'}"


# (which store it is, what else to fix when it cannot be used)
_TRACKING = ("MLflow tracking", "fix MLFLOW_TRACKING_URI / registry.tracking_uri, or unset them for the local store")
_REGISTRY = ("MLflow registry", "or fix MLFLOW_REGISTRY_URI")


def check_reachable(uri: str, role: tuple[str, str] = _TRACKING, timeout_s: float = 3.0) -> None:
    """Raise ModelLoadError naming `uri` (password masked) when its MLflow store cannot be used: an http(s) server
    or a PostgreSQL / MySQL database that does not answer within `timeout_s` seconds, or a sqlite file whose folder
    is missing (MLflow would start an empty store there, and every model would then be "not found").

    MlflowClient itself retries a refused connection for minutes, so a store that is down is caught here first.

    Args:
        uri: the tracking or registry URI.
        role: which store it is and what else to fix, for the message.
        timeout_s: how long to wait for a server's /health answer or a database connection, s.
    """
    problem = store_problem(uri, timeout_s)
    if problem is not None:
        what, why, fix = problem
        raise ModelLoadError(f"{role[0]} {what} ({why}); {fix}, {role[1]}.")


class RegistrySource:
    """Versions from the MLflow model registry; mlflow is imported only when a registry model is configured."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        from mlflow import MlflowClient

        self.uri = resolve_tracking_uri(tracking_uri)
        self._registry_uri = os.environ.get("MLFLOW_REGISTRY_URI") or self.uri
        check_reachable(self.uri)
        if self._registry_uri != self.uri:
            check_reachable(self._registry_uri, _REGISTRY)
        bound_http_retries()  # a poll must not sit in minutes of MLflow's retries while the registry is out
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self._registry_uri)

    def current(self, spec: ModelSpec) -> str:
        if not spec.by_alias:
            return spec.ref
        from mlflow.exceptions import MlflowException

        # a poll during an outage would sit in MlflowClient's retries for minutes, and pick the alias up late after
        problem = store_problem(self._registry_uri, timeout=3.0)  # a database registry too
        if problem is not None:
            what, why, _ = problem
            raise ModelLoadError(f"{spec}: the registry {what} ({why}); the served version stays")
        try:
            return str(self.client.get_model_version_by_alias(spec.name, spec.ref).version)
        except MlflowException as e:
            raise ModelLoadError(f"{spec} does not resolve in the registry at {self.uri}: {e.message}") from e

    def fetch(self, spec: ModelSpec, version: str, workdir: Path) -> Path:
        """Download version `version`'s artifacts into `workdir`; return its .onnx file."""
        import mlflow

        uri = f"models:/{spec.name}/{version}"
        try:
            # resolve through our client: a models:/ URI would be resolved against the *global* tracking URI
            location = self.client.get_model_version_download_uri(spec.name, version)
            with quiet_downloads():  # a progress bar per load would fill the server's log
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=location, dst_path=str(workdir), tracking_uri=self.uri
                )
        except Exception as e:  # mlflow raises MlflowException, OSError, ... depending on the store
            raise ModelLoadError(f"cannot download {uri} from {self.uri}: {e}") from e
        path = _onnx_file(Path(local), uri)
        self._check_digest(spec, version, path)
        return path

    def _check_digest(self, spec: ModelSpec, version: str, path: Path) -> None:
        """Refuse a file that is not the one exported (its SHA-256 is a version tag): one corrupted in the artifact
        store still loads and passes a smoke test on zeros, then answers nonsense. Untagged versions pass."""
        try:
            mv = self.client.get_model_version(spec.name, version)
            actual = digest_mismatch(path, mv.tags)
        except Exception as e:  # MlflowException, OSError: a store that fails now fails the load, not the server
            raise ModelLoadError(f"cannot check models:/{spec.name}/{version} against its export digest: {e}") from e
        if actual is not None:
            raise ModelLoadError(mismatch_message(spec.name, version, path.name, mv.run_id))


def _onnx_file(root: Path, uri: str) -> Path:
    """The .onnx file in a downloaded MLflow model: MLmodel's onnx flavour names it, else the only one there."""
    mlmodel = root / "MLmodel"
    if mlmodel.is_file():
        flavour = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {}).get("onnx", {})
        if flavour.get("data") and (root / flavour["data"]).is_file():
            return root / flavour["data"]
    found = sorted(root.rglob("*.onnx"))
    if len(found) != 1:
        raise ModelLoadError(f"{uri} holds {len(found)} .onnx files; log it with mlflow.onnx.log_model.")
    return found[0]


class LocalSource:
    """A local .onnx file; its version counts up from '1' each time the file's contents change."""

    def __init__(self) -> None:
        # path -> (mtime_ns, size, sha256, version); the stat pair spares hashing an unchanged file every poll
        self._seen: dict[str, tuple[int, int, str, int]] = {}

    def current(self, spec: ModelSpec) -> str:
        try:
            stat = os.stat(spec.ref)
            known = self._seen.get(spec.ref)
            if known is not None and known[:2] == (stat.st_mtime_ns, stat.st_size):
                return str(known[3])
            digest = hashlib.sha256(Path(spec.ref).read_bytes()).hexdigest()
        except OSError as e:
            raise ModelLoadError(f"cannot read {spec.ref}: {e}") from e
        version = 1 if known is None else known[3] + (known[2] != digest)
        self._seen[spec.ref] = (stat.st_mtime_ns, stat.st_size, digest, version)
        return str(version)

    def fetch(self, spec: ModelSpec, version: str, workdir: Path) -> Path:
        # A private copy, checked against the hash: the file may be rewritten while it is being loaded.
        data = Path(spec.ref).read_bytes()
        known = self._seen.get(spec.ref)
        if known is None or str(known[3]) != version or hashlib.sha256(data).hexdigest() != known[2]:
            raise ModelLoadError(f"{spec.ref} changed while it was being loaded; the next poll picks it up.")
        copy = workdir / Path(spec.ref).name
        copy.write_bytes(data)
        return copy


def scratch_dir() -> tempfile.TemporaryDirectory:
    """A temporary directory under CITYAGENT_HOME for one download (removed once the session is built)."""
    root = home_dir() / "serving" / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(dir=root)
