"""One MLflow run written from the driver through an explicit client (no global active run, so nested runs
and several trainings in one notebook do not interfere)."""

import logging
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from types import TracebackType
from typing import Any

from cityagent.errors import TrackingUnreachable
from cityagent.health import is_server, unreachable
from cityagent.interrupts import deferred
from cityagent.training.orphans import process_tags
from cityagent.training.tracking import client_for, experiment_id, finite, param_value

log = logging.getLogger(__name__)
BATCH = 100  # MLflow accepts at most 100 params / 1000 metrics per log_batch call
BUNDLE_ARTIFACT = "bundle/model.pt"  # report.BUNDLE_DIR / bundle.BUNDLE_FILE: what `cityagent export` reads


def held_for(uri: str) -> AbstractContextManager[None]:
    """A SIGTERM waits for a call into the store at ``uri`` to end when the store is written in this process
    (sqlite, a database, files): cut inside SQLAlchemy mid-transaction, it could leave the store unable to mark the
    run FAILED. An http(s) server's call is cut at once: the server finishes its side, and a server that is down
    would hold the SIGTERM for a minute of retries."""
    return nullcontext() if is_server(uri) else deferred()


class TrackedRun:
    """A started MLflow run; use as a context manager so a failure marks it FAILED.

    Args:
        client: an ``MlflowClient``.
        run_id: the run.
        experiment_id: its experiment, when known.
    """

    def __init__(self, client: Any, run_id: str, experiment_id: str | None = None) -> None:
        self.client, self.run_id, self.experiment_id = client, run_id, experiment_id
        self.logged: set[str] = set()  # artifact paths stored so far

    def _mark_command(self, status: str) -> str:
        """The one line a person runs to mark this run ``status`` once its store takes writes again."""
        return f"python -c \"import mlflow; mlflow.MlflowClient().set_terminated('{self.run_id}', '{status}')\""

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``; when the server is gone, one CityAgentError naming it and what to do. A SIGTERM
        waits for a local store's call to end (``held_for``)."""
        try:
            with held_for(self.client.tracking_uri):
                return fn(*args, **kwargs)
        except Exception as e:
            uri = self.client.tracking_uri
            why = unreachable(uri)
            if why is None:  # a sqlite store, or the server answers: a real MLflow error, shown as it is
                raise
            done = (
                f"its bundle is saved: once the server is back, finish with `cityagent export {self.run_id}`"
                if BUNDLE_ARTIFACT in self.logged
                else "start it again (or unset MLFLOW_TRACKING_URI for the local store) and retrain"
            )
            left = (  # it cannot be marked FAILED while the server is down
                f"; the run stays RUNNING there until marked: {self._mark_command('FAILED')}"
                if BUNDLE_ARTIFACT not in self.logged
                else ""
            )
            raise TrackingUnreachable(
                f"MLflow tracking server {uri} not reachable ({why}) while logging run {self.run_id}; {done}{left}",
                uri,
                why,
            ) from e

    @classmethod
    def start(
        cls,
        uri: str | None,
        experiment: str,
        run_name: str,
        tags: dict[str, str] | None = None,
        parent_run_id: str | None = None,
    ) -> "TrackedRun":
        """Create a run in ``experiment`` (created if missing) on the store at ``uri`` (default store if None),
        tagged with this process (host, pid, start time) so a run left RUNNING when it dies can be found."""
        client = client_for(uri)
        tags = process_tags() | dict(tags or {})
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        exp = experiment_id(client, experiment)
        run = client.create_run(exp, run_name=run_name, tags=tags)
        return cls(client, run.info.run_id, exp)

    @property
    def artifact_uri(self) -> str:
        return self._call(self.client.get_run, self.run_id).info.artifact_uri

    def params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, param_value(v)) for k, v in params.items()]
        for i in range(0, len(items), BATCH):
            self._call(self.client.log_batch, self.run_id, params=items[i : i + BATCH])

    def tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self._call(self.client.log_batch, self.run_id, tags=[RunTag(k, param_value(v)) for k, v in tags.items()])

    def metrics(self, metrics: dict[str, Any], step: int = 0, prefix: str = "") -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(prefix + k, v, now, step) for k, v in finite(metrics).items()]
        for i in range(0, len(items), BATCH):
            self._call(self.client.log_batch, self.run_id, metrics=items[i : i + BATCH])

    def epoch(self, row: dict[str, float]) -> None:
        """One epoch's metrics at step = epoch (``epoch`` and ``step`` themselves are not metrics)."""
        self.metrics({k: v for k, v in row.items() if k not in ("epoch", "step")}, step=int(row["epoch"]))

    def artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._call(self.client.log_artifact, self.run_id, str(path), artifact_path)
        self.logged.add(f"{artifact_path}/{Path(path).name}" if artifact_path else Path(path).name)

    def text(self, text: str, artifact_file: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / Path(artifact_file).name
            p.write_text(text)
            parent = str(Path(artifact_file).parent)
            self.artifact(p, None if parent == "." else parent)

    def end(self, status: str = "FINISHED") -> None:
        self._call(self.client.set_terminated, self.run_id, status)

    def __enter__(self) -> "TrackedRun":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None and issubclass(exc_type, TrackingUnreachable):
            return  # marking the run FAILED would wait on the dead server for another round of retries
        if exc_type is None:
            self.end("FINISHED")
        else:
            status = "KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED"
            try:
                self.end(status)
            except Exception as e:  # said here: the caller reports the failure that ended the run, not this one
                log.warning(
                    "MLflow run %s could not be marked %s (%s); it shows RUNNING until a later training in its "
                    "experiment marks it KILLED, or: %s",
                    self.run_id,
                    status,
                    f"{type(e).__name__}: {e}",
                    self._mark_command(status),
                )
                raise
            if exc is not None:  # what the CLI names (e.g. on SIGTERM); an outer run (a sweep) overwrites its trial's
                exc.ended_run = (self.run_id, status)
