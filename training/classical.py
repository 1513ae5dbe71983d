"""Classical estimators (``kind='classical'``, e.g. gbrt): fitted on numpy windows in the scaled space, no Ray."""

from pathlib import Path
from typing import Any

import joblib
import numpy as np

from cityagent.hub.protocols import TaskData
from cityagent.models.registry import build_model
from cityagent.training.build import build_params
from cityagent.training.config import RunConfig

ESTIMATOR_FILE = "estimator.joblib"


class ClassicalPredictor:
    """A fitted estimator that takes and returns real units: scales x, predicts, un-scales.

    Args:
        estimator: an object with ``predict(x [S, T, N, F]) -> [S, H, N] (or [S, H, N, Q])`` in scaled space.
        x_scale, x_offset: ``[F]`` input scaler.
        y_scale, y_offset: target scaler.
    """

    def __init__(self, estimator: Any, x_scale: np.ndarray, x_offset: np.ndarray, y_scale: float, y_offset: float):
        self.estimator = estimator
        self.x_scale, self.x_offset = np.asarray(x_scale), np.asarray(x_offset)
        self.y_scale, self.y_offset = float(y_scale), float(y_offset)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        scaled = self.estimator.predict(x * self.x_scale + self.x_offset)
        return ((scaled - self.y_offset) / self.y_scale).astype(np.float32)

    def save(self, path: str | Path) -> Path:
        joblib.dump(self, path)
        return Path(path)

    @staticmethod
    def load(path: str | Path) -> "ClassicalPredictor":
        return joblib.load(path)


def fit_classical(task: TaskData, cfg: RunConfig) -> tuple[ClassicalPredictor, dict[str, Any]]:
    """Fit the classical model on the training windows whose targets are all observed.

    Returns:
        ``(predictor, build params)``.
    """
    params = build_params(task, cfg.model, cfg.train.quantiles)
    estimator = build_model(cfg.model.name, **params)
    x, y, mask = task.train.arrays()  # [S, T, N, F], [S, H, N], [S, H, N]
    keep = mask.all(axis=(1, 2))  # the trees cannot skip masked targets, so such windows are left out
    xs, xo = task.x_scaler.scale, task.x_scaler.offset
    ys, yo = float(task.y_scaler.scale[0]), float(task.y_scaler.offset[0])
    estimator.fit(x[keep] * xs + xo, y[keep] * ys + yo)
    return ClassicalPredictor(estimator, xs, xo, ys, yo), params
