"""cityagent.training: learn models from the hub — Lightning engine, Ray Train jobs, Tune sweeps, MLflow runs.

Entry points: ``cityagent.training.fit(config)`` (the function ``cityagent.training.fit.fit``) trains, evaluates and
tracks one model; ``cityagent.training.tune(config, samples)`` (``cityagent.training.tune.tune``) searches
hyperparameters with ASHA;
``cityagent.training.evaluate.evaluate_run(run_id)`` re-scores a logged run. (Submodules are imported on use, so
reading a config with ``cityagent.training.config`` stays light.)
"""

import importlib
from typing import Any

_CALLABLE = ("fit", "tune")  # submodules that, called, run their function of the same name


def __getattr__(name: str) -> Any:
    """``cityagent.training.fit`` / ``.tune`` without importing them first: imported on first use (torch, Ray)."""
    if name in _CALLABLE:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
