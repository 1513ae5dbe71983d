"""A ModelBundle → one self-contained ONNX file: real units in and out, task facts as metadata, parity checked.

Needs no MLflow, so a server or a notebook can export a local bundle; ``cityagent.training.export`` adds
the MLflow logging and registration on top.
"""

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from cityagent.errors import CityAgentError
from cityagent.models.classical.tree_module import ML_DOMAIN, ML_OPSET, TreeEnsemble
from cityagent.models.scaled import ScaledModel
from cityagent.training.bundle import ModelBundle
from cityagent.training.classical import ClassicalPredictor
from cityagent.training.onnx_meta import INPUT_NAME, OUTPUT_NAME, REQUIRED, onnx_metadata, write_metadata
from cityagent.training.parity import ExportError, check_parity, relative_diff, sample_inputs

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


def has_tree_nodes(model: torch.nn.Module) -> bool:
    """Whether ``model`` exports ``ai.onnx.ml`` TreeEnsemble nodes; only then is that domain declared (the exporter
    warns of a declared domain no node uses, as in every deep model)."""
    return any(isinstance(m, TreeEnsemble) and m.ml is not None for m in model.modules())


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
            custom_opsets={ML_DOMAIN: ML_OPSET} if has_tree_nodes(model) else None,
        )
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto)
    return proto


def build_onnx(
    bundle: ModelBundle,
    sample_x: np.ndarray | None = None,
    tolerance: float = 1e-4,
    estimator: ClassicalPredictor | None = None,
) -> OnnxExport:
    """Export ``bundle`` and check parity on ``sample_x`` (default: noise through the x-scaler's inverse).

    Args:
        bundle: a trained model bundle.
        sample_x: real-unit windows [S, T_in, N, F], ideally held-out test windows.
        tolerance: largest allowed relative difference torch vs ONNX Runtime (and, for a classical model, its
            torch translation vs the fitted estimator itself).
        estimator: a classical model's fitted estimator (``estimator.joblib`` beside the bundle).
    """
    if not (isinstance(tolerance, int | float) and math.isfinite(tolerance) and tolerance >= 0):
        raise ExportError(f"tolerance={tolerance!r} is not a relative difference; pass a number ≥ 0, e.g. 1e-4.")
    classical = bundle.model_info().kind == "classical"
    if classical and estimator is None:
        raise ExportError(
            f"{bundle.model_name!r} is a classical estimator: export it with its fitted estimator "
            f"({bundle.meta.get('estimator', 'estimator.joblib')} beside the bundle; export_run fetches it)."
        )
    shape = input_shape(bundle)
    if sample_x is None:
        sample_x = sample_inputs(bundle.x_scaler["scale"], bundle.x_scaler["offset"], shape)
    sample_x = np.asarray(sample_x, dtype=np.float32)
    if sample_x.ndim != 4 or sample_x.shape[1:] != shape or len(sample_x) < 1:
        raise ExportError(f"sample windows have shape {sample_x.shape}; the task needs [S, *{shape}] (T_in, N, F).")
    try:
        model = classical_module(estimator, bundle.model_name) if classical else bundle.build()
    except RuntimeError as e:  # load_state_dict: weights that do not fit the architecture
        raise ExportError(f"bundle weights do not fit {bundle.model_name!r} ({e}); the bundle is corrupt.") from e
    try:
        proto = to_onnx(model, torch.from_numpy(sample_x[:1]))
    except (RuntimeError, onnx.checker.ValidationError) as e:
        raise ExportError(f"{bundle.model_name!r} does not export to ONNX opset {OPSET}: {e}") from e
    with torch.no_grad():
        out_shape = [-1, *model(torch.from_numpy(sample_x[:1])).shape[1:]]  # [B, H, N] or [B, H, N, Q]
    size_output(proto, out_shape)
    write_metadata(proto, onnx_metadata(bundle.meta, bundle.model_name, [-1, *shape], out_shape))
    parity = check_parity(model, proto.SerializeToString(), sample_x, tolerance)
    if classical:  # the translation itself must forecast what the fitted estimator does
        with torch.no_grad():
            translated = model(torch.from_numpy(sample_x)).numpy()
        diff = relative_diff(estimator(sample_x), translated)
        if not diff <= tolerance:
            raise ExportError(
                f"the torch translation of {bundle.model_name!r} disagrees with the fitted estimator: relative "
                f"difference {diff:.3g} > tolerance {tolerance:g}; report the model name."
            )
        parity = max(parity, diff)
    return OnnxExport(proto, parity, sample_x)


def size_output(proto: onnx.ModelProto, shape: list[int]) -> None:
    """Declare the graph output's sizes (all but the dynamic batch axis) from the traced ``shape`` [-1, H, N(, Q)].

    The tracer loses them behind some final ops (a Cast after a GRU or the risk net), leaving e.g.
    ['batch', 'Casty_dim_1', 'Casty_dim_2']: ModelMetadata then shows [-1, -1, -1] and a server cannot tell that a
    new version forecasts another horizon. The parity check that follows runs the result in ONNX Runtime.
    """
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    if len(dims) != len(shape):
        raise ExportError(f"the ONNX output has rank {len(dims)} but the model's output shape is {shape}; report it.")
    for dim, size in zip(list(dims)[1:], shape[1:], strict=True):
        if dim.HasField("dim_value") and dim.dim_value != size:
            raise ExportError(f"the ONNX output declares size {dim.dim_value} where the model gives {size}; report it.")
        dim.dim_value = size  # replaces a symbolic dim_param (a oneof)


def classical_module(estimator: ClassicalPredictor, name: str) -> torch.nn.Module:
    """A fitted classical model as a real-unit torch module, or an ExportError saying it has no translation."""
    inner = estimator.estimator
    if not hasattr(inner, "to_torch"):
        raise ExportError(
            f"{name!r} has no ONNX translation yet; serve a torch model of the task, or use it through "
            "cityagent evaluate / ClassicalPredictor offline."
        )
    try:
        net = inner.to_torch()
    except CityAgentError as e:
        raise ExportError(f"{name!r} does not export: {e}") from e
    model = ScaledModel(
        net, estimator.x_scale, estimator.x_offset, estimator.y_scale, estimator.y_offset, dtype=torch.float64
    )
    return model.set_floor(getattr(estimator, "floor", None)).eval()  # the same clip as the estimator's own call


def export_bundle(
    bundle: ModelBundle,
    out_path: str | Path,
    *,
    sample_x: np.ndarray | None = None,
    tolerance: float = 1e-4,
    estimator: ClassicalPredictor | None = None,
) -> Path:
    """Write ``bundle`` as one self-contained ONNX file (no MLflow needed); see ``build_onnx``.

    Args:
        bundle: a trained model bundle.
        out_path: the .onnx file to write (parents are created).
        sample_x: real-unit windows [S, T_in, N, F] for the parity check.
        tolerance: largest allowed relative difference torch vs ONNX Runtime.
        estimator: a classical model's fitted estimator (see ``build_onnx``).
    """
    exported = build_onnx(bundle, sample_x, tolerance, estimator)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(exported.to_bytes())
    return out
