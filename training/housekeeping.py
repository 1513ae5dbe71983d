"""What training leaves on this machine's disk, kept bounded for a scheduler that retrains for months.

Ray keeps every session's folder (logs, sockets, runtime resources) under its temp dir and never deletes one: a
local Ray started per retrain adds 1-3 MB each time. So before a local Ray starts, the oldest of the earlier sessions
beyond the newest ``$CITYAGENT_RAY_KEEP_SESSIONS`` (default 20) are deleted, never one a Ray process still runs
from. And a retrain, once its challenger is registered and judged, deletes its own training checkpoints and the
local copy of its ONNX export: the MLflow run and the registry hold the weights, the ONNX file, metrics and plots,
and nothing reads those files again. Manual runs (``cityagent train``, ``fit`` in a notebook, which returns the
checkpoint) keep theirs.
"""

import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from cityagent.errors import ConfigError
from cityagent.home import home_dir

log = logging.getLogger(__name__)
KEEP_ENV = "CITYAGENT_RAY_KEEP_SESSIONS"
KEEP_DEFAULT = 20
START_GRACE_S = 600  # a session folder this young may belong to a Ray that is starting: its processes not up yet


def keep_sessions() -> int | None:
    """How many earlier Ray sessions to keep: ``$CITYAGENT_RAY_KEEP_SESSIONS``, default 20; None keeps all."""
    raw = os.environ.get(KEEP_ENV, "").strip()
    if not raw:
        return KEEP_DEFAULT
    if raw.lower() == "all":
        return None
    if not raw.isdigit():
        raise ConfigError(f"{KEEP_ENV}={raw!r}: give a whole number of Ray sessions to keep (e.g. 20), or 'all'")
    return int(raw)


def _running_from(folders: list[Path]) -> set[Path]:
    """The folders a running process names on its command line (a session's gcs_server, raylet and monitors do)."""
    import psutil

    named = {f: re.compile(re.escape(str(f)) + r"(?=/|\s|$)") for f in folders}  # not a folder it is a prefix of
    live: set[Path] = set()
    for proc in psutil.process_iter(["cmdline"]):
        line = " ".join(proc.info.get("cmdline") or ())
        live.update(f for f, pattern in named.items() if pattern.search(line))
    return live


def prune_sessions(temp_dir: Path, keep: int | None) -> list[Path]:
    """Delete the Ray session folders in ``temp_dir`` older than its newest ``keep``; returns those deleted.

    Never deleted: a session a Ray process still runs from, the one ``session_latest`` points at, and any younger
    than ``START_GRACE_S`` (its Ray may be starting beside us). A folder that cannot be deleted is left with a warning.
    """
    if keep is None or not temp_dir.is_dir():
        return []
    sessions = sorted(p for p in temp_dir.glob("session_2*") if p.is_dir() and not p.is_symlink())  # time order
    old = sessions[: max(len(sessions) - keep, 0)]
    if not old:
        return []
    latest = temp_dir / "session_latest"
    spared = _running_from(old) | ({latest.resolve()} if latest.is_symlink() else set())
    now, gone = time.time(), []
    for folder in old:
        try:
            if folder.resolve() in spared or folder in spared or now - folder.stat().st_mtime < START_GRACE_S:
                continue
            shutil.rmtree(folder)
        except FileNotFoundError:  # another run starting a local Ray pruned it first
            continue
        except OSError as e:
            log.warning("could not delete the old Ray session %s (%s); delete it by hand", folder, e)
            continue
        gone.append(folder)
    if gone:
        log.info("deleted %d old Ray session folder(s) in %s (%s keeps %d)", len(gone), temp_dir, KEEP_ENV, keep)
    return gone


def drop_training_files(run_id: str, info: dict[str, Any]) -> list[Path]:
    """Delete a finished run's local files: its Ray Train folder and epoch log (``info["ray_run"]``) or its
    in-process checkpoints, and the local copy of its ONNX export (the registry holds the file). Only what names
    this run, in the checkpoint storage or under ``$CITYAGENT_HOME``, is touched; remote storage (``s3://``) is
    left as it is. Returns what was deleted."""
    from cityagent.training.ray_cluster import storage_path

    home = home_dir()
    targets = [home / "checkpoints" / run_id, home / "exports" / run_id]
    ray_run = info.get("ray_run")
    if ray_run and "://" not in str(ray_run):
        folder = Path(str(ray_run))
        if folder.parent == Path(storage_path()) and folder.name.endswith(run_id[:12]):
            targets += [folder, home / "ray" / "epochs" / f"{folder.name}.jsonl"]
    gone = []
    for path in targets:
        try:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.is_file():
                path.unlink()
            else:
                continue
        except OSError as e:
            log.warning("could not delete %s, the training files of run %s (%s); delete it by hand", path, run_id, e)
            continue
        gone.append(path)
    return gone
