"""MLflow downloads without MLflow's progress bars, and where a run's files are downloaded to.

``Downloading artifacts: 100%|██████████| 1/1`` printed by every load or evaluation fills a notebook cell with
noise. MLflow reads ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR`` at each download and has no per-call option, so it
is set only while our own downloads run, and only when the user has not set it.
"""

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cityagent.home import home_dir

PROGRESS_VAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
_lock = threading.Lock()
_active = 0  # blocks open now, across threads: the variable is restored when the last one closes
_ours = False  # whether the open blocks set it (the user had not)


@contextmanager
def quiet_downloads() -> Iterator[None]:
    """MLflow downloads inside the block print no progress bar; the environment is as it was after the block."""
    global _active, _ours
    with _lock:
        if _active == 0:
            _ours = PROGRESS_VAR not in os.environ  # the user's own setting wins
            if _ours:
                os.environ[PROGRESS_VAR] = "false"
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _ours:
                os.environ.pop(PROGRESS_VAR, None)
                _ours = False


def run_folder(run_id: str) -> Path:
    """``$CITYAGENT_HOME/downloads/<run id>``: one folder per run, reused by every load of it (not one per call)."""
    return home_dir() / "downloads" / run_id
