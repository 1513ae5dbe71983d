"""MLflow: one run per training with the resolved config, data fingerprint, git commit, metrics and artifacts.

Default store: ``sqlite:///$CITYAGENT_HOME/mlflow.db`` with artifacts beside it; ``MLFLOW_TRACKING_URI`` or
``tracking.tracking_uri`` switch to a team server or database, which is checked first so one that is down fails fast
(MLflow itself retries a database for about two minutes, then raises a traceback).
Everything is logged from the driver (one process), so Ray workers never create duplicate runs.
"""

import functools
import inspect
import logging
import math
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cityagent.errors import CityAgentError, ConfigError
from cityagent.health import is_server
from cityagent.home import home_dir
from cityagent.store_check import bound_http_retries, store_problem
from cityagent.training.config import RunConfig

if TYPE_CHECKING:  # mlflow is imported when a client is made
    from mlflow import MlflowClient

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]
MAX_PARAM = 6000  # MLflow's limit on a param value


def tracking_uri(uri: str | None = None) -> str:
    """``uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///$CITYAGENT_HOME/mlflow.db``."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home_dir() / 'mlflow.db'}"


def check_server(uri: str, timeout: float = 3.0) -> None:
    """Raise CityAgentError naming ``uri`` (password masked) and what to do, when its tracking store cannot be used
    (``store_problem``: a server or database that does not answer, a sqlite file whose folder is missing)."""
    problem = store_problem(uri, timeout)
    if problem:
        what, why, fix = problem
        raise CityAgentError(
            f"MLflow tracking {what} ({why}); {fix}, fix MLFLOW_TRACKING_URI / tracking.tracking_uri, "
            f"or unset them for the local store"
        )


def artifact_root(uri: str) -> str | None:
    """Artifacts of a sqlite store go beside the database (not into ./mlruns of the working directory)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
    return None  # a server or file store decides itself


def experiment_name(cfg: RunConfig) -> str:
    """``tracking.experiment``, else one experiment per domain: ``cityagent-<domain>``."""
    return cfg.tracking.experiment or f"cityagent-{cfg.task.domain}"


def client_for(uri: str | None = None) -> "MlflowClient":
    """A checked ``MlflowClient`` for ``uri`` (default store when None), with bounded HTTP retries."""
    from mlflow import MlflowClient

    uri = tracking_uri(uri)
    check_server(uri)
    if is_server(uri):  # a server's calls are cut at once: it finishes its side, and one that is down would hold
        bound_http_retries()  # a SIGTERM for a minute of retries
        return MlflowClient(tracking_uri=uri)
    return _held_client()(tracking_uri=uri)


@functools.cache
def _held_client() -> type["MlflowClient"]:
    """``MlflowClient`` whose every public call holds a SIGTERM until it returns (``deferred``), for the stores this
    process writes itself (sqlite, a database, files). Cut inside SQLAlchemy mid-transaction, a registry write of
    export or the gate could leave the store unable to record what happened (the run FAILED, the history entry)."""
    from mlflow import MlflowClient

    from cityagent.interrupts import deferred

    def held(name: str) -> Any:
        def call(self: MlflowClient, *args: Any, **kwargs: Any) -> Any:
            with deferred():
                return getattr(MlflowClient, name)(self, *args, **kwargs)  # looked up now: a test's patch applies

        call.__name__ = call.__qualname__ = name
        return call

    public = [n for n, f in vars(MlflowClient).items() if not n.startswith("_") and inspect.isfunction(f)]
    return type("HeldMlflowClient", (MlflowClient,), {n: held(n) for n in public} | {"__module__": __name__})


def __getattr__(name: str) -> Any:
    """Pickle finds the held client's class by name, like MlflowClient's (it is made on first use)."""
    if name == "HeldMlflowClient":
        return _held_client()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def experiment_id(client: Any, name: str) -> str:
    """The experiment ``name``, created (with artifacts beside a sqlite store) when missing."""
    exp = client.get_experiment_by_name(name)
    if exp is not None and exp.lifecycle_stage == "deleted":  # MLflow would refuse the run with its own words
        raise ConfigError(
            f"MLflow experiment {name!r} (id {exp.experiment_id}) was deleted; restore it (`mlflow experiments "
            f"restore --experiment-id {exp.experiment_id}`, or MlflowClient().restore_experiment("
            f"'{exp.experiment_id}')) or choose another tracking.experiment"
        )
    if exp is not None:
        return exp.experiment_id
    root = artifact_root(client.tracking_uri)
    return client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)


def git_commit() -> str | None:
    """HEAD of the repository this code runs from, with ``-dirty`` when the tree has changes; None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=5)
        if head.returncode:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def param_value(v: Any) -> str:
    s = str(v)
    return s if len(s) <= MAX_PARAM else s[: MAX_PARAM - 3] + "..."


def finite(metrics: dict[str, Any]) -> dict[str, float]:
    """Numeric metrics only (NaN kept: MLflow stores it; None and strings dropped)."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and not math.isinf(float(v))
    }
