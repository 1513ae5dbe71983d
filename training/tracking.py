"""MLflow: one run per training with the resolved config, data fingerprint, git commit, metrics and artifacts.

Default store: ``sqlite:///$CITYAGENT_HOME/mlflow.db`` with artifacts beside it; ``MLFLOW_TRACKING_URI`` or
``tracking.tracking_uri`` switch to a team server or database, which is checked first so one that is down fails fast
(MLflow itself retries a database for about two minutes, then raises a traceback).
Everything is logged from the driver (one process), so Ray workers never create duplicate runs.
"""

import logging
import math
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cityagent.errors import CityAgentError
from cityagent.health import unreachable
from cityagent.home import home_dir
from cityagent.training.config import RunConfig

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]
MAX_PARAM = 6000  # MLflow's limit on a param value
# MLflow retries each HTTP call 7 times with backoff 2 and a 120 s timeout (minutes per call against a server
# that died mid-run); a CLI run gives up within about a minute instead. Set these variables to override.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}


def tracking_uri(uri: str | None = None) -> str:
    """``uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///$CITYAGENT_HOME/mlflow.db``."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home_dir() / 'mlflow.db'}"


def masked(uri: str) -> str:
    """``uri`` with its password, if any, shown as ``***``."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    user, _, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}").geturl()


def _database_problem(uri: str, timeout: float) -> tuple[str, str] | None:
    """(why, what to do) when a PostgreSQL or MySQL store refuses a connection within ``timeout`` seconds."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    scheme = uri.split("://", 1)[0]
    try:
        engine = sa.create_engine(uri, poolclass=NullPool, connect_args={"connect_timeout": max(2, math.ceil(timeout))})
    except sa.exc.ArgumentError as e:
        return f"not a database URL: {e}", "fix the URL"
    except ModuleNotFoundError as e:  # the very driver MLflow would load for this URL
        name = e.name or str(e)
        fix = "pip install it, or name an installed driver in the URL (e.g. postgresql+psycopg://, mysql+pymysql://)"
        return f"{scheme} needs the Python module {name!r}, which is not installed", fix
    try:
        with engine.connect():
            return None
    except sa.exc.DBAPIError as e:
        lines = str(e.orig).strip().splitlines() or [e.__class__.__name__]
        return lines[0].removeprefix("connection failed: "), "start the database server or create the database"
    finally:
        engine.dispose()


def _sqlite_problem(uri: str) -> tuple[str, str] | None:
    """(why, what to do) when sqlite cannot keep a store at ``uri``: its folder is missing (MLflow would silently
    create it, so a typo would start an empty store) or not writable (sqlite writes its journal beside the file)."""
    path = uri.split("://", 1)[1].removeprefix("/").split("?", 1)[0]
    if path in ("", ":memory:"):
        return None
    file = Path(path).expanduser().absolute()
    folder = file.parent
    if not folder.is_dir():
        if folder.resolve() == home_dir(create=False):  # cityagent's own home: created on first use
            return None
        return f"its folder {folder} does not exist", "create the folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"its folder {folder} is not writable", "make it writable"
    if file.exists() and not os.access(file, os.W_OK):
        return f"{file} is read-only", "make it writable"
    return None


def check_server(uri: str, timeout: float = 3.0) -> None:
    """Raise CityAgentError naming ``uri`` (password masked) and what to do, when its tracking store cannot be used.

    Checked: an http(s) server's ``/health``; a ``postgresql://`` or ``mysql://`` database that refuses a connection
    within ``timeout`` seconds (down, wrong port or database name, bad credentials, no driver); a ``sqlite://`` file
    whose folder is missing or not writable. Other schemes are left to MLflow.
    """
    scheme = uri.split("://", 1)[0].split("+", 1)[0] if "://" in uri else ""
    if scheme in ("http", "https"):
        why = unreachable(uri, timeout)
        what, problem = f"server {masked(uri)} is not reachable", why and (why, "start it")
    elif scheme in ("postgresql", "mysql"):
        what, problem = f"database {masked(uri)} is not reachable", _database_problem(uri, timeout)
    elif scheme == "sqlite":
        what, problem = f"store {masked(uri)} cannot be opened", _sqlite_problem(uri)
    else:
        return
    if problem:
        why, fix = problem
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


def bound_http_retries() -> None:
    """Default MLflow's HTTP retries and timeout to ``HTTP_DEFAULTS`` where the environment sets none."""
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


def client_for(uri: str | None = None):
    """A checked ``MlflowClient`` for ``uri`` (default store when None), with bounded HTTP retries."""
    from mlflow import MlflowClient

    uri = tracking_uri(uri)
    check_server(uri)
    if uri.startswith(("http://", "https://")):
        bound_http_retries()
    return MlflowClient(tracking_uri=uri)


def experiment_id(client: Any, name: str) -> str:
    """The experiment ``name``, created (with artifacts beside a sqlite store) when missing."""
    exp = client.get_experiment_by_name(name)
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
