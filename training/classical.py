"""Classical estimators (``kind='classical'``, e.g. gbrt): fitted on numpy windows in the scaled space, no Ray."""

from pathlib import Path
from typing import Any

import joblib
import numpy as np

from cityagent.hub.protocols import TaskData
from cityagent.hub.windows import Split
from cityagent.models.registry import build_model
from cityagent.training.build import build_params, target_floor
from cityagent.training.config import RunConfig
from cityagent.training.data import predict_split
from cityagent.training.scoring import score

ESTIMATOR_FILE = "estimator.joblib"


class ClassicalPredictor:
    """A fitted estimator that takes and returns real units: scales x, predicts, un-scales.

    Args:
        estimator: an object with ``predict(x [S, T, N, F]) -> [S, H, N] (or [S, H, N, Q])`` in scaled space.
        x_scale, x_offset: ``[F]`` input scaler.
        y_scale, y_offset: target scaler.
        floor: least real-unit output (``target_floor``: 0 for a target never negative), or None.
    """

    def __init__(
        self,
        estimator: Any,
        x_scale: np.ndarray,
        x_offset: np.ndarray,
        y_scale: float,
        y_offset: float,
        floor: float | None = None,
    ) -> None:
        self.estimator = estimator
        self.x_scale, self.x_offset = np.asarray(x_scale), np.asarray(x_offset)
        self.y_scale, self.y_offset = float(y_scale), float(y_offset)
        self.floor = floor

    def __call__(self, x: np.ndarray) -> np.ndarray:
        scaled = self.estimator.predict(x * self.x_scale + self.x_offset)
        y = ((scaled - self.y_offset) / self.y_scale).astype(np.float32)
        floor = getattr(self, "floor", None)  # predictors pickled before 2026-12-05 have none
        return y if floor is None else np.maximum(y, np.float32(floor))

    def save(self, path: str | Path) -> Path:
        joblib.dump(self, path)
        return Path(path)

    @staticmethod
    def load(path: str | Path) -> "ClassicalPredictor":
        return joblib.load(path)


def fit_classical(task: TaskData, cfg: RunConfig) -> tuple[ClassicalPredictor, dict[str, Any], dict[str, float]]:
    """Fit the classical model on the training windows whose targets are all observed, and score validation.

    With ``train.refit``, the model is then fitted again on the training and validation windows together, and
    that one is returned: the validation metrics stay those of the first fit, which never saw validation.

    Returns:
        ``(predictor, build params, validation metrics as val_*)``.
    """
    params = build_params(task, cfg.model, cfg.train.quantiles)
    xs, xo = task.x_scaler.scale, task.x_scaler.offset
    ys, yo = float(task.y_scaler.scale[0]), float(task.y_scaler.offset[0])
    floor = target_floor(task)

    def fitted(splits: list[Split]) -> ClassicalPredictor:
        x, y, mask = (np.concatenate(a) for a in zip(*(s.arrays() for s in splits), strict=True))  # [S, T, N, F] ...
        keep = mask.all(axis=(1, 2))  # the trees cannot skip masked targets, so such windows are left out
        estimator = build_model(cfg.model.name, **params)
        estimator.fit(x[keep] * xs + xo, y[keep] * ys + yo)
        return ClassicalPredictor(estimator, xs, xo, ys, yo, floor)

    predictor = fitted([task.train])
    val: dict[str, float] = {}
    if len(task.val):
        found, _ = score(task, task.val, predict_split(predictor, task.val), cfg.task.domain, cfg.train.quantiles)
        val = {f"val_{k}": v for k, v in found.items()}
        if cfg.train.refit:
            predictor = fitted([task.train, task.val])
    return predictor, params, val
