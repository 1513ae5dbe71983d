"""One retrain per task at a time, even when two schedulers were started by mistake; one agent loop per hub.

With a PostgreSQL URL (``retrain.lock_url``, ``CITYAGENT_LOCK_URL``, or ``MLFLOW_TRACKING_URI`` when the tracking
store is PostgreSQL) the lock is a session advisory lock, so schedulers on different machines exclude each other;
the holder is named in the session's ``application_name``. Otherwise it is an exclusive ``flock`` on
``$CITYAGENT_HOME/locks/<task>.lock`` (one machine, or a filesystem with working flock), with the holder written
into the file. Both locks die with their process, so a crashed scheduler never leaves a task locked. An agent loop
locks its hub with a file lock, ``<hub>/.agent.lock`` (so agents with different homes see each other too), and a
live listener with ``<hub>/.listen.lock``, and whoever compacts its part files with ``<hub>/.compact.lock``.
"""

import fcntl
import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from cityagent.errors import CityAgentError, ConfigError
from cityagent.home import home_dir

if TYPE_CHECKING:  # only PostgreSQL locks need it
    import psycopg

PG_NAMESPACE = 0x636167  # first key of the two-key advisory lock: 'cag', so other apps' locks never collide
HOLDER_WAIT_S = 0.5  # how long a loser waits for the winner of a same-instant race to write its name
TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Holder:
    """Who holds a task's lock."""

    pid: int
    host: str
    since: datetime


def _who(holder: Holder | None) -> str:
    if holder is None:
        return "another process that did not name itself (or released the lock just now)"
    return f"pid {holder.pid} on {holder.host} since {holder.since.isoformat(timespec='seconds')}"


class LockHeld(CityAgentError):
    """Another process holds the lock; ``holder`` names it when it could be read."""

    def __init__(self, message: str, holder: Holder | None) -> None:
        self.holder = holder
        super().__init__(message)


class TaskBusy(LockHeld):
    """Another process is retraining the task; the caller should skip this run."""

    def __init__(self, task: str, holder: Holder | None) -> None:
        self.task = task
        super().__init__(f"task {task} is being retrained by {_who(holder)}; skipping this run", holder)


class HubBusy(LockHeld):
    """Another agent loop runs on the hub: two would forecast and decide the same windows side by side."""

    def __init__(self, hub: Path, holder: Holder | None) -> None:
        self.hub = hub
        super().__init__(
            f"an agent already runs on hub {hub}: {_who(holder)}; stop it first, or give this one another --hub "
            "(one agent per hub writes its decisions and live error)",
            holder,
        )


class ListenerBusy(LockHeld):
    """Another ``hub listen`` appends to the hub: two would write every reading twice."""

    def __init__(self, hub: Path, holder: Holder | None) -> None:
        self.hub = hub
        super().__init__(
            f"a listener already appends to hub {hub}: {_who(holder)}; stop it first, or give this one another "
            "--hub (two listeners on one hub write every reading twice)",
            holder,
        )


class CompactionBusy(LockHeld):
    """Another process compacts the hub's part files: two would each merge the same parts."""

    def __init__(self, hub: Path, holder: Holder | None) -> None:
        self.hub = hub
        super().__init__(f"the part files of hub {hub} are being compacted by {_who(holder)}; try again later", holder)


def is_postgres(url: str | None) -> bool:
    return bool(url) and url.split("://", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def resolve_lock_url(configured: str | None = None) -> str | None:
    """The PostgreSQL URL to lock in, or None for file locks.

    The configured ``retrain.lock_url``, else ``$CITYAGENT_LOCK_URL`` (how a Kubernetes Secret passes it), else
    ``$MLFLOW_TRACKING_URI`` when the tracking store is PostgreSQL.
    """
    for where, url in (("retrain.lock_url", configured), ("CITYAGENT_LOCK_URL", os.environ.get("CITYAGENT_LOCK_URL"))):
        if url:
            if not is_postgres(url):
                raise ConfigError(f"{where} must be a postgresql:// URL (or unset for file locks), not {url!r}")
            return url
    env = os.environ.get("MLFLOW_TRACKING_URI")
    return env if is_postgres(env) else None


def lock_url_source(url: str) -> str:
    """Where ``resolve_lock_url`` found ``url``: the setting a user must fix when it does not work."""
    if url == os.environ.get("CITYAGENT_LOCK_URL"):
        return "$CITYAGENT_LOCK_URL"
    if url == os.environ.get("MLFLOW_TRACKING_URI"):
        return "$MLFLOW_TRACKING_URI (or set retrain.lock_url)"
    return "retrain.lock_url"


@contextmanager
def task_lock(task: str, url: str | None = None) -> Iterator[Holder]:
    """Hold ``task``'s retrain lock for the ``with`` block, or raise ``TaskBusy`` at once if someone else holds it.

    Args:
        task: task name (letters, digits, ``.``, ``_``, ``-``).
        url: PostgreSQL URL for an advisory lock; None locks a file under ``$CITYAGENT_HOME/locks``.
    """
    if not TASK_NAME.match(task):
        raise ConfigError(f"task name {task!r} may hold only letters, digits, '.', '_' and '-'")
    busy = partial(TaskBusy, task)
    if is_postgres(url):
        with _pg_lock(_pg_key(task), busy, url) as me:
            yield me
    else:
        with _file_lock(home_dir() / "locks" / f"{task}.lock", busy) as me:
            yield me


@contextmanager
def hub_lock(hub: str | Path) -> Iterator[Holder]:
    """Hold the agent loop's lock on the local hub directory ``hub`` (``<hub>/.agent.lock``), or raise ``HubBusy``.

    A file lock on the hub itself, not an advisory lock in PostgreSQL: a loop holds it for days, and a database
    restart would drop a session lock without a word.
    """
    path = Path(hub).resolve()
    if not path.is_dir():
        raise ConfigError(f"hub {path} does not exist; create it with `cityagent hub synth` or pass --hub")
    fix = "make the hub writable (the agent appends its decisions there) or pass another --hub"
    with _file_lock(path / ".agent.lock", partial(HubBusy, path), fix) as me:
        yield me


@contextmanager
def listen_lock(hub: str | Path) -> Iterator[Holder]:
    """Hold the live listener's lock on the local hub directory ``hub`` (``<hub>/.listen.lock``), or raise
    ``ListenerBusy``: one listener per hub, as one agent loop per hub."""
    path = Path(hub).resolve()
    fix = "make the hub writable (the listener appends its readings there) or pass another --hub"
    with _file_lock(path / ".listen.lock", partial(ListenerBusy, path), fix) as me:
        yield me


@contextmanager
def compact_lock(hub: str | Path) -> Iterator[Holder]:
    """Hold the lock on compacting the local hub ``hub``'s part files (``<hub>/.compact.lock``), or raise
    ``CompactionBusy``: the listener, the agent and `cityagent hub compact` each compact, one at a time."""
    path = Path(hub).resolve()
    fix = "make the hub writable (compaction rewrites its part files) or skip compaction"
    with _file_lock(path / ".compact.lock", partial(CompactionBusy, path), fix) as me:
        yield me


def _me() -> Holder:
    return Holder(os.getpid(), socket.gethostname(), datetime.now(UTC).replace(microsecond=0))


@contextmanager
def _file_lock(
    path: Path, busy: Callable[[Holder | None], LockHeld], fix: str = "make its folder writable"
) -> Iterator[Holder]:
    me = _me()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:  # e.g. a read-only hub: one line naming it, not a traceback
        raise ConfigError(f"cannot create the lock file {path}: {e.strerror or e}; {fix}") from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy(_wait_for_holder(fd)) from None
        info = json.dumps({"pid": me.pid, "host": me.host, "since": me.since.isoformat()}).encode()
        try:
            os.pwrite(fd, info, 0)  # a loser that looks before this line waits for it (_wait_for_holder)
            os.ftruncate(fd, len(info))
        except OSError:  # a full disk: the flock holds all the same, only a loser cannot name us
            pass
        try:
            yield me
        finally:
            try:
                os.ftruncate(fd, 0)  # the file stays (removing it would race a waiting locker); its contents go
            except OSError:  # e.g. a hub remounted read-only meanwhile: the close below still releases the lock
                pass
    finally:
        os.close(fd)  # closing releases the flock


def _wait_for_holder(fd: int) -> Holder | None:
    """The holder named in the lock file; one that took the lock a moment ago is given a moment to write it."""
    deadline = time.monotonic() + HOLDER_WAIT_S
    while (holder := _read_holder(os.pread(fd, 4096, 0))) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return holder


def _read_holder(raw: bytes) -> Holder | None:
    try:
        d = json.loads(raw)
        return Holder(int(d["pid"]), str(d["host"]), datetime.fromisoformat(d["since"]))
    except (ValueError, KeyError, TypeError):
        return None  # the holder is between taking the lock and writing its name


def _pg_key(task: str) -> int:
    return int.from_bytes(hashlib.sha256(task.encode()).digest()[:4], "big") & 0x7FFFFFFF


def check_lock_url(url: str | None) -> None:
    """Connect once to a PostgreSQL lock URL, so a scheduler refuses to start rather than fail at the first run."""
    if is_postgres(url):
        _connect(url, "cityagent check").close()


def _connect(url: str, app: str) -> "psycopg.Connection":
    import psycopg

    dsn = re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", url)  # SQLAlchemy driver suffixes mean nothing here
    try:
        return psycopg.connect(dsn, autocommit=True, application_name=app, connect_timeout=10)
    except psycopg.Error as e:
        why = " ".join(str(e).split())  # libpq's message spans lines; the CLI prints one
        raise CityAgentError(f"cannot reach PostgreSQL for the retrain lock: {why}; fix {lock_url_source(url)}") from e


@contextmanager
def _pg_lock(objid: int, busy: Callable[[Holder | None], LockHeld], url: str) -> Iterator[Holder]:
    me = _me()
    conn = _connect(url, f"cityagent {me.pid}@{me.host[:32]} {int(me.since.timestamp())}"[:63])
    key = (PG_NAMESPACE, objid)
    with conn:
        if not conn.execute("select pg_try_advisory_lock(%s, %s)", key).fetchone()[0]:
            row = conn.execute(
                "select a.application_name from pg_locks l join pg_stat_activity a on a.pid = l.pid "
                "where l.locktype = 'advisory' and l.classid = %s and l.objid = %s and l.objsubid = 2 and l.granted",
                key,
            ).fetchone()
            raise busy(_app_holder(row[0] if row else ""))
        try:
            yield me
        finally:
            conn.execute("select pg_advisory_unlock(%s, %s)", key)


def _app_holder(app: str | None) -> Holder | None:
    m = re.fullmatch(r"cityagent (\d+)@(\S+) (\d+)", app or "")
    if not m:
        return None
    return Holder(int(m[1]), m[2], datetime.fromtimestamp(int(m[3]), UTC))
