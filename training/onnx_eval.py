"""Score an exported ONNX model on a window of real data: error metrics, batch-1 latency and file size."""

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cityagent.errors import CityAgentError
from cityagent.training.metrics import point_metrics
from cityagent.training.onnx_meta import INPUT_NAME, read_metadata
from cityagent.training.parity import ort_session


@dataclass(frozen=True)
class Evaluation:
    """How a model did.

    Args:
        metrics: ``mae``, ``rmse`` (target units) and ``mape`` (%, over non-zero targets, as in training).
        latency_ms: median wall time of one batch-1 call, milliseconds (ONNX Runtime, 1 thread).
        size_mb: model file size, MiB.
    """

    metrics: dict[str, float] = field(default_factory=dict)
    latency_ms: float = float("nan")
    size_mb: float = float("nan")


def point_forecast(pred: np.ndarray, quantiles: list[float] | None) -> np.ndarray:
    """[S, H, N] as is; [S, H, N, Q] → the level nearest the median."""
    if pred.ndim == 3:
        return pred
    q = int(np.argmin(np.abs(np.asarray(quantiles) - 0.5))) if quantiles else pred.shape[-1] // 2
    return pred[..., q]


def error_metrics(pred: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """MAE, RMSE and MAPE of ``pred`` vs ``y`` [S, H, N] over ``mask`` (broadcastable bool) and finite targets."""
    keep = np.isfinite(y) & (np.broadcast_to(np.asarray(mask, dtype=bool), y.shape) if mask is not None else True)
    if not keep.any():
        raise CityAgentError("the evaluation window has no finite, unmasked targets; pick another window.")
    return point_metrics(y, pred, keep)  # training's own definitions: the gate and the run's test metrics agree


def evaluate_onnx(
    model_path: str | Path, x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None, *, latency_runs: int = 30
) -> Evaluation:
    """Metrics on (x, y), p50 latency at batch 1 and size of the ONNX model at ``model_path``.

    Args:
        model_path: a self-contained .onnx file (real units in and out).
        x: real-unit windows [S, T_in, N, F].
        y: real-unit targets [S, H, N].
        mask: bool, broadcastable to y (e.g. ``[N]`` evaluated nodes); None keeps every finite target.
        latency_runs: timed batch-1 calls after 3 warm-up calls.
    """
    path = Path(model_path)
    if not path.is_file():
        raise CityAgentError(f"ONNX model {path} does not exist; export the run first (cityagent export RUN_ID).")
    session = ort_session(str(path), threads=1)
    x = np.ascontiguousarray(x, dtype=np.float32)
    pred = point_forecast(session.run(None, {INPUT_NAME: x})[0], read_metadata(path).get("quantiles"))
    if pred.shape != np.shape(y):
        raise CityAgentError(f"the model predicts {pred.shape} but the targets are {np.shape(y)}; same task?")
    one = x[:1]
    for _ in range(3):
        session.run(None, {INPUT_NAME: one})
    times = []
    for _ in range(max(latency_runs, 1)):
        t0 = time.perf_counter()
        session.run(None, {INPUT_NAME: one})
        times.append(time.perf_counter() - t0)
    return Evaluation(
        error_metrics(pred, np.asarray(y), mask), float(np.median(times) * 1e3), path.stat().st_size / 2**20
    )
