"""Where cityagent keeps its state: hub, mlflow.db, artifacts and Ray storage under one directory."""

import os
from pathlib import Path


def home_dir(create: bool = True) -> Path:
    """Return ``$CITYAGENT_HOME`` (default ``./.cityagent``), created on first use."""
    home = Path(os.environ.get("CITYAGENT_HOME", ".cityagent")).expanduser().resolve()
    if create:
        home.mkdir(parents=True, exist_ok=True)
    return home
