"""Torch vs ONNX Runtime parity on held-out windows: an exported model must answer like the trained one."""

import numpy as np
import onnxruntime as ort
import torch

from cityagent.errors import CityAgentError
from cityagent.training.onnx_meta import INPUT_NAME


class ExportError(CityAgentError):
    """A model that cannot be exported faithfully; nothing is logged or registered."""


def ort_session(model: bytes | str, threads: int | None = None) -> ort.InferenceSession:
    """A CPU ONNX Runtime session on a serialised model or a path."""
    opts = ort.SessionOptions()
    if threads is not None:
        opts.intra_op_num_threads = opts.inter_op_num_threads = threads
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def run_onnx(model: bytes | str, x: np.ndarray) -> np.ndarray:
    """The ONNX model's first output for real-unit input ``x`` [B, T_in, N, F]."""
    return ort_session(model).run(None, {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[0]


def relative_diff(reference: np.ndarray, other: np.ndarray) -> float:
    """max |reference - other| / max |reference| (inf when shapes differ or values are not finite)."""
    if reference.shape != other.shape or not np.isfinite(other).all():
        return float("inf")
    scale = max(float(np.abs(reference).max(initial=0.0)), 1e-12)
    return float(np.abs(reference.astype(np.float64) - other).max(initial=0.0)) / scale


def sample_inputs(x_scale: np.ndarray, x_offset: np.ndarray, shape: tuple[int, int, int], n: int = 8) -> np.ndarray:
    """Real-unit windows whose scaled values are standard normal: the scaler's inverse of N(0, 1) noise.

    Used when a bundle ships no ``sample.npz`` of real test windows.

    Args:
        x_scale, x_offset: ``[F]`` input scaling (scaled = x * scale + offset).
        shape: (T_in, N, F).
        n: how many windows.
    """
    z = np.random.default_rng(0).standard_normal((n, *shape))
    scale = np.where(np.asarray(x_scale) == 0, 1.0, x_scale)  # a constant feature: any value scales to offset
    return ((z - np.asarray(x_offset)) / scale).astype(np.float32)  # [n, T_in, N, F]


def check_parity(model: torch.nn.Module, onnx_bytes: bytes, x: np.ndarray, tolerance: float = 1e-4) -> float:
    """Relative difference of ONNX Runtime vs torch on ``x`` (checked at batch len(x) and at batch 1).

    Raises:
        ExportError: when the difference exceeds ``tolerance`` or torch itself gives non-finite values.
    """
    with torch.no_grad():
        ref = model(torch.as_tensor(x, dtype=torch.float32)).numpy()
    if not np.isfinite(ref).all():
        state = model.state_dict().values()
        if any(t.is_floating_point() and not torch.isfinite(t).all() for t in state):
            raise ExportError(
                "the torch model's weights hold NaN or inf (training diverged), so its outputs are NaN/inf; "
                "retrain with a lower train.lr or check the data."
            )
        raise ExportError(
            "the torch model gives NaN or inf on the sample windows though its weights and scalers are finite; "
            "retrain with a lower train.lr or check the data (and bundle/sample.npz, when the run logged one)."
        )
    diff = max(relative_diff(ref, run_onnx(onnx_bytes, x)), relative_diff(ref[:1], run_onnx(onnx_bytes, x[:1])))
    if not diff <= tolerance:
        raise ExportError(
            f"ONNX Runtime disagrees with torch: relative difference {diff:.3g} > tolerance {tolerance:g}; "
            "the graph uses an op the exporter does not translate faithfully — report the model name."
        )
    return diff
