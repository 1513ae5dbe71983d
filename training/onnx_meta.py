"""Task facts carried inside the ONNX file (``metadata_props``), so a server needs nothing else.

Contract for readers (serving does not import training): every value is JSON; decode each with
``json.loads``. Keys: task, domain, dataset, protocol, model_name, nodes (node ids), step, input_len,
horizon, input_offsets, target_offsets, feature_names, units, quantiles, eval_mask, run_id (and target,
interval_calibration, grid, model_kind, hub_fingerprint, and the input facts input_ranges, one_hot, calendar,
timezone (``cityagent.hub.feature_facts``) when training recorded them), input_names, output_names,
input_shape / output_shape (-1 = dynamic batch), cityagent_version, metadata_format.
"""

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx

import cityagent

INPUT_NAME = "x"
OUTPUT_NAME = "y"
METADATA_FORMAT = 1
REQUIRED = ("task", "domain", "nodes", "step", "input_len", "horizon", "feature_names")
OPTIONAL = (
    "dataset",
    "protocol",
    "input_offsets",
    "target_offsets",
    "units",
    "quantiles",
    "interval_calibration",
    "eval_mask",
    "run_id",
    "target",
    "grid",
    "model_kind",
    "hub_fingerprint",
    "input_ranges",
    "one_hot",
    "calendar",
    "timezone",
)


def _plain(v: Any) -> Any:
    """numpy scalars and arrays → JSON types; anything else JSON cannot hold is an error, not a str()."""
    if isinstance(v, np.ndarray | np.generic):
        return v.tolist()
    raise TypeError(f"{type(v).__name__} is not JSON-serialisable")


def onnx_metadata(meta: dict[str, Any], model_name: str, input_shape: list[int], output_shape: list[int]) -> dict:
    """The ``metadata_props`` of a served model, every value JSON-encoded.

    Args:
        meta: the bundle's task facts (must hold REQUIRED; OPTIONAL ones are copied when present).
        model_name: registry name of the architecture.
        input_shape, output_shape: tensor shapes with -1 for the batch axis.
    """
    facts = {k: meta[k] for k in (*REQUIRED, *OPTIONAL) if k in meta}
    facts.update(
        model_name=model_name,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        input_shape=input_shape,
        output_shape=output_shape,
        cityagent_version=cityagent.__version__,
        metadata_format=METADATA_FORMAT,
    )
    return {k: json.dumps(v, default=_plain) for k, v in facts.items()}


def write_metadata(model: onnx.ModelProto, props: dict[str, str]) -> None:
    """Replace the model's metadata_props with ``props``."""
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def read_metadata(source: str | Path | onnx.ModelProto) -> dict[str, Any]:
    """Decoded metadata of an ONNX model (a path or a loaded ModelProto)."""
    model = source if isinstance(source, onnx.ModelProto) else onnx.load(str(source), load_external_data=False)
    return {p.key: json.loads(p.value) for p in model.metadata_props}
