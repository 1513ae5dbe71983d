"""Can an MLflow tracking store be used? Asked before handing it to MLflow, whose client retries an HTTP server or a
database for minutes and then raises a traceback. Training and serving share these checks."""

import math
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from cityagent.health import unreachable
from cityagent.home import home_dir


def store_problem(uri: str, timeout: float = 3.0) -> tuple[str, str, str] | None:
    """``(what, why, what to do)`` when the tracking store at ``uri`` cannot be used, else None.

    Checked: an http(s) server's ``/health``; a ``postgresql://`` or ``mysql://`` database that refuses a connection
    within ``timeout`` seconds (down, wrong port or database name, bad credentials, no driver); a ``sqlite://`` file
    whose folder is missing or not writable. Other schemes are left to MLflow. ``what`` names ``uri`` with its
    password masked, e.g. ``database postgresql://mlflow:***@db/mlflow is not reachable``.
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
        return None
    return (what, *problem) if problem else None


# MLflow retries each HTTP call 7 times with backoff 2 and a 120 s timeout (minutes per call against a server
# that died mid-run, or whose database did); training gives up within about a minute instead, and serving's alias
# poll sees a promotion made after an outage at its next poll. Set these variables to override.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}


def bound_http_retries() -> None:
    """Default MLflow's HTTP retries and timeout to ``HTTP_DEFAULTS`` where the environment sets none."""
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


_URL_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)[^@\s/]+@")


def redacted(text: str) -> str:
    """``text`` with the password of every URL in it shown as ``***`` (errors quote URIs they were given)."""
    return _URL_PASSWORD.sub(r"\1***@", text)


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
