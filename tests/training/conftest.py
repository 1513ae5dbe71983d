"""A tiny synthetic city shared by the training tests, and a config factory for quick runs on it."""

from pathlib import Path
from typing import Any

import pytest

from cityagent.hub.synth import SynthParams, synthesize
from cityagent.training.config import RunConfig, load_config


@pytest.fixture(scope="session")
def _mlflow_db(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def shared_mlflow_store(_mlflow_db, monkeypatch):
    """One sqlite store for the session: creating its tables costs seconds, so tests share it (runs are unique).

    Opt in with ``pytestmark = pytest.mark.usefixtures("shared_mlflow_store")``.
    """
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _mlflow_db)


@pytest.fixture(scope="session")
def tiny_hub(tmp_path_factory) -> Path:
    """6 sensors, 4 zones (2×2 grid), 7 hourly days; accidents made frequent so the risk task has targets."""
    out = tmp_path_factory.mktemp("hub") / "tiny"
    return synthesize(
        out, sensors=6, zones=4, days=7, step="1h", seed=1, progress=False, params=SynthParams(accident_rate=2e-2)
    )


@pytest.fixture
def tiny_cfg(tiny_hub):
    """``tiny_cfg(**{"model.name": "ha"})``: a 2-epoch, in-process, unregistered run on the tiny hub."""

    def make(**overrides: Any) -> RunConfig:
        base = {
            "task.hub": str(tiny_hub),
            "task.params": {"input_len": 6, "horizon": 3},
            "model.params": {"hidden_size": 8},
            "train.max_epochs": 2,
            "train.batch_size": 32,
            "train.workers": 0,
            "tracking.register_model": False,
        }
        return load_config(None, base | overrides)

    return make
