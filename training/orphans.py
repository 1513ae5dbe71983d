"""Runs left RUNNING by a training that was killed without ending them (SIGKILL, the OOM killer, a reboot).

Every run records who runs it (host, pid, the process's start time); a training that starts on the same host ends
the runs whose process is gone as KILLED, so the registry and comparison views stop showing them as training.
"""

import logging
import os
import socket
import sys
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)

HOST, PID, PID_START, PID_NS = "cityagent.host", "cityagent.pid", "cityagent.pid_start", "cityagent.pid_ns"
ENDED_BY, NOTE = "cityagent.ended_by", "mlflow.note.content"  # the note is the run's description in MLflow's UI


def _exists(pid: int) -> bool:
    """Whether ``pid`` exists, by signal 0 (which sends nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, so a reused pid is told apart: None when it is gone (or a zombie), "" when it
    lives but its start time cannot be read.

    Linux: field 22 of /proc/<pid>/stat (clock ticks since boot, exact); elsewhere psutil's create time if installed.
    """
    if sys.platform.startswith("linux"):
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except FileNotFoundError:  # gone, or hidden from this user (/proc mounted with hidepid)
            return "" if _exists(pid) else None
        except OSError:
            return ""
        fields = stat[stat.rfind(")") + 2 :].split()  # the name in (…) may hold spaces; fields[0] is field 3
        if len(fields) < 20:
            return ""
        if fields[0] == "Z":  # a zombie is dead, only not reaped yet
            return None
        return fields[19]
    try:
        import psutil
    except ImportError:
        return ("" if _exists(pid) else None) if os.name == "posix" else ""  # Windows' os.kill would terminate it
    try:
        p = psutil.Process(pid)
        return None if p.status() == psutil.STATUS_ZOMBIE else f"{p.create_time():.3f}"
    except psutil.NoSuchProcess:
        return None
    except psutil.Error:
        return ""


def _pid_namespace() -> str:
    """This process's pid namespace ("" off Linux): a container sharing the host's name does not share its pids."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def process_tags() -> dict[str, str]:
    """The tags naming the process that runs a new run (the Ray driver for a Ray run: it creates and ends the run)."""
    pid = os.getpid()
    tags = {HOST: socket.gethostname(), PID: str(pid)}
    start = process_start(pid)
    if start:
        tags[PID_START] = start
    ns = _pid_namespace()
    if ns:
        tags[PID_NS] = ns
    return tags


def _gone(tags: dict[str, str], host: str, ns: str) -> str | None:
    """Why the run's process is gone, or None when it lives or is not one this host can check."""
    if tags.get(HOST) != host or tags.get(PID_NS, "") != ns:  # other machines (or containers) check their own
        return None
    try:
        pid = int(tags[PID])
    except (KeyError, ValueError):
        return None
    if pid <= 0:  # signal 0 to pid 0 or -1 would test process groups, not a process
        return None
    start, recorded = process_start(pid), tags.get(PID_START, "")
    if start is None:
        return f"its process {pid} no longer exists"
    if start and recorded and start != recorded:
        return f"its process {pid} no longer exists (pid {pid} now belongs to a process started later)"
    return None


def mark_orphaned(client: Any, experiment_ids: list[str]) -> list[str]:
    """End as KILLED the RUNNING runs of ``experiment_ids`` whose process on this host is gone; the ids marked.

    Runs of other hosts, runs without the process tags (older runs, other tools) and runs whose process lives are
    left alone. Never raises: a store error is logged at debug level, since the check must not fail a training.

    Args:
        client: an ``MlflowClient``.
        experiment_ids: the experiments to look in (one ``search_runs`` call).
    """
    from mlflow.entities import RunTag

    try:
        runs = client.search_runs(experiment_ids, "attributes.status = 'RUNNING'")
    except Exception as e:
        log.debug("orphan check skipped: searching RUNNING runs failed: %s", e)
        return []
    host, ns, marked = socket.gethostname(), _pid_namespace(), []
    for run in runs:
        tags, run_id = run.data.tags, run.info.run_id
        why = _gone(tags, host, ns)
        if why is None:
            continue
        when = datetime.now().astimezone().isoformat(timespec="seconds")
        note = (
            f"Marked KILLED by cityagent's orphan check on {host} at {when}: {why}, so the training was killed "
            "without ending its run (SIGKILL, the OOM killer, a reboot)."
        )
        if tags.get(NOTE):  # keep a description someone wrote
            note = f"{tags[NOTE]}\n\n{note}"
        try:
            client.set_terminated(run_id, "KILLED")
            client.log_batch(run_id, tags=[RunTag(ENDED_BY, "orphan-check"), RunTag(NOTE, note)])
        except Exception as e:
            log.debug("orphan check could not mark run %s: %s", run_id, e)
            continue
        log.warning(
            "MLflow run %s was left RUNNING by process %s on %s, which is gone: marked KILLED", run_id, tags[PID], host
        )
        marked.append(run_id)
    return marked
