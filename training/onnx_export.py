"""A ModelBundle → one self-contained ONNX file: real units in and out, task facts as metadata, parity checked.

Needs no MLflow, so a server or a notebook can export a local bundle; ``cityagent.training.export`` adds
the MLflow logging and registration on top.
"""

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from cityagent.models.registry import model_info
from cityagent.training.bundle import ModelBundle
from cityagent.training.onnx_meta import INPUT_NAME, OUTPUT_NAME, REQUIRED, onnx_metadata, write_metadata
from cityagent.training.parity import ExportError, check_parity, sample_inputs

OPSET = 17


@dataclass(frozen=True)
class OnnxExport:
    """An exported model and its checks.

    Args:
        model: the ONNX model with metadata.
        parity: relative difference torch vs ONNX Runtime on the sample windows.
        sample: the real-unit windows [S, T_in, N, F] the parity was checked on.
    """

    model: onnx.ModelProto
    parity: float
    sample: np.ndarray

    def to_bytes(self) -> bytes:
        return self.model.SerializeToString()


def input_shape(bundle: ModelBundle) -> tuple[int, int, int]:
    """(T_in, N, F) from the bundle's task facts; missing facts are an ExportError naming them."""
    missing = [k for k in REQUIRED if k not in bundle.meta]
    if missing:
        raise ExportError(f"bundle of {bundle.model_name!r} lacks meta {missing}; retrain with this cityagent version.")
    return int(bundle.meta["input_len"]), len(bundle.meta["nodes"]), len(bundle.meta["feature_names"])


def to_onnx(model: torch.nn.Module, example: torch.Tensor) -> onnx.ModelProto:
    """Trace ``model`` with the legacy exporter (opset 17), input 'x' and output 'y' with a dynamic batch axis."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
        torch.onnx.export(
            model,
            (example,),
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto)
    return proto


def build_onnx(bundle: ModelBundle, sample_x: np.ndarray | None = None, tolerance: float = 1e-4) -> OnnxExport:
    """Export ``bundle`` and check parity on ``sample_x`` (default: noise through the x-scaler's inverse).

    Args:
        bundle: a trained model bundle (a torch model, not a classical estimator).
        sample_x: real-unit windows [S, T_in, N, F], ideally held-out test windows.
        tolerance: largest allowed relative difference torch vs ONNX Runtime.
    """
    if model_info(bundle.model_name).kind == "classical":
        raise ExportError(f"{bundle.model_name!r} is a classical estimator; only torch models export to ONNX.")
    shape = input_shape(bundle)
    if sample_x is None:
        sample_x = sample_inputs(bundle.x_scaler["scale"], bundle.x_scaler["offset"], shape)
    sample_x = np.asarray(sample_x, dtype=np.float32)
    if sample_x.ndim != 4 or sample_x.shape[1:] != shape or len(sample_x) < 1:
        raise ExportError(f"sample windows have shape {sample_x.shape}; the task needs [S, *{shape}] (T_in, N, F).")
    try:
        model = bundle.build()
    except RuntimeError as e:  # load_state_dict: weights that do not fit the architecture
        raise ExportError(f"bundle weights do not fit {bundle.model_name!r} ({e}); the bundle is corrupt.") from e
    try:
        proto = to_onnx(model, torch.from_numpy(sample_x[:1]))
    except (RuntimeError, onnx.checker.ValidationError) as e:
        raise ExportError(f"{bundle.model_name!r} does not export to ONNX opset {OPSET}: {e}") from e
    with torch.no_grad():
        out_shape = [-1, *model(torch.from_numpy(sample_x[:1])).shape[1:]]  # [B, H, N] or [B, H, N, Q]
    write_metadata(proto, onnx_metadata(bundle.meta, bundle.model_name, [-1, *shape], out_shape))
    parity = check_parity(model, proto.SerializeToString(), sample_x, tolerance)
    return OnnxExport(proto, parity, sample_x)


def export_bundle(
    bundle: ModelBundle, out_path: str | Path, *, sample_x: np.ndarray | None = None, tolerance: float = 1e-4
) -> Path:
    """Write ``bundle`` as one self-contained ONNX file (no MLflow needed); see ``build_onnx``.

    Args:
        bundle: a trained model bundle.
        out_path: the .onnx file to write (parents are created).
        sample_x: real-unit windows [S, T_in, N, F] for the parity check.
        tolerance: largest allowed relative difference torch vs ONNX Runtime.
    """
    exported = build_onnx(bundle, sample_x, tolerance)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(exported.to_bytes())
    return out
