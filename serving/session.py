"""One loaded model version: an ONNX Runtime session, its signature and its ONNX metadata_props."""

import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from cityagent.onnx_digest import file_sha256
from cityagent.serving.config import OrtConfig
from cityagent.serving.datatypes import NUMPY, ORT
from cityagent.serving.errors import ModelLoadError
from cityagent.serving.input_check import ChannelFacts
from cityagent.serving.signature import Signature, TensorSpec

log = logging.getLogger(__name__)

_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(cfg: OrtConfig) -> ort.SessionOptions:
    """ORT SessionOptions from the serving config (threads, graph optimisation, execution mode)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = cfg.intra_op_threads
    opts.inter_op_num_threads = cfg.inter_op_threads
    opts.graph_optimization_level = _LEVELS[cfg.graph_optimization]
    opts.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL if cfg.execution_mode == "parallel" else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    opts.log_severity_level = 3  # errors only: ORT's warnings would flood the server log
    return opts


class OrtModel:
    """A model version ready to run.

    Args:
        name: the model's name on the wire.
        version: its version string (registry version, or a counter for local files).
        path: the .onnx file (external data next to it is picked up by ORT).
        cfg: ORT session options.
        source: where it came from, for logs and metadata (e.g. 'models:/traffic-synthetic/3').
    """

    def __init__(self, name: str, version: str, path: str | Path, cfg: OrtConfig, source: str = "") -> None:
        self.name, self.version, self.source = name, version, source or str(path)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=session_options(cfg), providers=cfg.providers)
        except Exception as e:  # ORT raises several unrelated types for a bad file
            raise ModelLoadError(f"{self.source} is not a loadable ONNX model ({type(e).__name__}: {e}).") from e
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self.sha256 = file_sha256(path)  # what the file is, whatever version number this process gave it
        inputs = tuple(_spec(t, self.source) for t in self.session.get_inputs())
        outputs = tuple(_spec(t, self.source) for t in self.session.get_outputs())
        declared = _declared(inputs, self.metadata, "input_names", "input_shape")
        self.signature = Signature(
            inputs=declared,
            outputs=_declared(outputs, self.metadata, "output_names", "output_shape"),
            facts=ChannelFacts.from_metadata(self.metadata, declared[0].name) if len(declared) == 1 else None,
        )

    def run(self, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run the session (blocking; ORT releases the GIL while it computes)."""
        names = outputs or [t.name for t in self.signature.outputs]
        return dict(zip(names, self.session.run(names, inputs), strict=True))

    def smoke_test(self) -> None:
        """Run zeros of the declared input shapes (dynamic dims = 1); raise ModelLoadError if that fails."""
        feed = {
            t.name: np.zeros([1 if d == -1 else d for d in t.shape], dtype=NUMPY[t.datatype])
            for t in self.signature.inputs
        }
        try:
            result = self.run(feed)
        except Exception as e:
            raise ModelLoadError(f"{self.source} fails a smoke inference on zeros ({type(e).__name__}: {e}).") from e
        for spec in self.signature.outputs:
            got = result[spec.name].shape
            if len(got) != len(spec.shape) or any(d not in (-1, g) for d, g in zip(spec.shape, got, strict=True)):
                raise ModelLoadError(
                    f"{self.source} output '{spec.name}' has shape {list(got)}, not {list(spec.shape)}."
                )


def _spec(arg: ort.NodeArg, source: str) -> TensorSpec:
    if arg.type not in ORT:
        raise ModelLoadError(f"{source} tensor '{arg.name}' has type {arg.type}, which serving does not support.")
    # ORT reports a dynamic dimension as a symbol name or None.
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
    return TensorSpec(name=arg.name, datatype=ORT[arg.type], shape=shape)


def _declared(
    specs: tuple[TensorSpec, ...], metadata: dict[str, str], names_key: str, shape_key: str
) -> tuple[TensorSpec, ...]:
    """`specs` with dynamic axes filled in from the exporter's metadata (e.g. output_shape [-1, 12, 16]).

    Older exports leave some output axes symbolic where the tracer lost them (behind a final Cast), so clients
    saw [-1, -1, -1] and a hot swap to another horizon went unnoticed; the smoke test then checks the sizes.
    Only a lone tensor that the metadata names (or does not name) is filled; axes ONNX knows stay as they are.
    """
    if len(specs) != 1:
        return specs
    try:
        names = json.loads(metadata.get(names_key, "null"))
        shape = json.loads(metadata.get(shape_key, "null"))
    except ValueError:  # not a cityagent export: nothing to go on
        return specs
    spec = specs[0]
    if names not in (None, [spec.name]) or not isinstance(shape, list) or len(shape) != len(spec.shape):
        return specs
    if not all(type(d) is int for d in shape):
        return specs
    filled = tuple(m if d == -1 and m > 0 else d for d, m in zip(spec.shape, shape, strict=True))
    return (TensorSpec(spec.name, spec.datatype, filled),)
