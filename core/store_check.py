"""Can an MLflow tracking store be used? Asked before handing it to MLflow, whose client retries an HTTP server or a
database for minutes and then raises a traceback. Training and serving share these checks."""

import contextlib
import math
import os
import re
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

from cityagent.health import unreachable
from cityagent.home import home_dir

_checked: list[Path] = []  # the sqlite store file this process checked last, i.e. uses (named by damaged_store)


def store_problem(uri: str, timeout: float = 3.0) -> tuple[str, str, str] | None:
    """``(what, why, what to do)`` when the tracking store at ``uri`` cannot be used, else None.

    Checked: an http(s) server's ``/health``; a ``postgresql://`` or ``mysql://`` database that refuses a connection
    within ``timeout`` seconds (down, wrong port or database name, bad credentials, no driver); a ``sqlite://`` file
    whose folder is missing or not writable, that is damaged, or that is missing or empty while the ``artifacts``
    folder beside it holds logged models. Other schemes are left to MLflow. ``what`` names ``uri`` with its
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
    _checked[:] = [file]
    folder = file.parent
    if not folder.is_dir():
        if folder.resolve() == home_dir(create=False):  # cityagent's own home: created on first use
            return None
        return f"its folder {folder} does not exist", "create the folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"its folder {folder} is not writable", "make it writable"
    if file.exists() and not os.access(file, os.W_OK):
        return f"{file} is read-only", "make it writable"
    return _sqlite_damage(file)


def _sqlite_damage(file: Path) -> tuple[str, str] | None:
    """(why, what to do) when the store file is damaged, or is missing or empty while the artifacts folder beside it
    holds logged models: MLflow would answer a damaged file with a long SQLAlchemy traceback, and would silently
    make a missing or empty one a fresh, empty registry, orphaning every model and the alias history."""
    size = file.stat().st_size if file.exists() else None
    if size:
        why = _unreadable(file)
        return (f"{file} is damaged: {why}", f"restore {file.name} from a backup") if why else None
    artifacts = file.parent / "artifacts"
    model = next(artifacts.rglob("MLmodel"), None) if artifacts.is_dir() else None
    if model is None:
        return None  # a new store: MLflow creates its tables
    state = "is missing" if size is None else "is empty (0 bytes)"
    return (
        f"{file} {state} but {artifacts} holds models logged to it (e.g. {model.parent.relative_to(artifacts)})",
        f"restore {file.name} from a backup, or move {artifacts} aside to start an empty registry on purpose",
    )


def _unreadable(file: Path) -> str | None:
    """SQLite's own reason it cannot open ``file`` (not a database, a truncated or corrupt first page), else None.

    Opening reads only the header and schema, so this stays cheap for serving's every poll; damage deeper in the
    file surfaces when MLflow reads it, and the CLI turns that into one line too (``damaged_store``).
    """
    try:
        with contextlib.closing(sqlite3.connect(f"{file.as_uri()}?mode=ro", uri=True, timeout=3.0)) as db:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        return None  # locked, or a hot journal only a writer may roll back: MLflow copes, or says so itself
    except sqlite3.DatabaseError as e:  # SQLITE_CORRUPT, SQLITE_NOTADB
        return str(e)
    return None


def damaged_store(error: BaseException) -> str | None:
    """One line naming the store file and what to do when ``error`` (or an exception it was raised from) is SQLite
    saying a file is damaged (``database disk image is malformed``) inside MLflow; None for every other error
    (a damaged sqlite hub is the hub's to name)."""
    if not _raised_in(error, "mlflow."):
        return None
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        for e in (error, getattr(error, "orig", None)):  # SQLAlchemy wraps the DB-API error as .orig
            if isinstance(e, sqlite3.DatabaseError) and not isinstance(e, sqlite3.OperationalError):
                file = str(_checked[-1]) if _checked else "the MLflow sqlite store"
                return f"MLflow store {file} is damaged ({e}); restore it from a backup"
        error = error.__cause__ or error.__context__
    return None


def _raised_in(error: BaseException, prefix: str) -> bool:
    """Whether a frame of ``error``'s traceback runs code of a module whose name starts with ``prefix``."""
    tb = error.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(prefix):
            return True
        tb = tb.tb_next
    return False
