"""Whether a new version can replace the served one without breaking its clients.

Clients are written against the served version's interface: its tensors (names, datatypes, shapes) and the
facts in its ONNX metadata that give those shapes meaning (node ids, feature names, horizon, target offsets). A hot
swap to a version that changes any of them would turn every existing client's request into INVALID_ARGUMENT (or,
worse, into answers for other nodes or steps ahead), so the store refuses it; a restart serves it deliberately.
"""

import json
from typing import Any

from cityagent.serving.session import OrtModel
from cityagent.serving.signature import TensorSpec

# Metadata keys that are part of the interface: compared when both versions carry them (older exports may lack one).
# What a client sends: node ids, features, the window and what one step of it means; what it reads back: the
# forecast's shape and which steps ahead (and quantiles) each output index holds. The shapes are compared here too
# because older exports left output axes symbolic in the ONNX graph, where -1 matches any size.
CONTRACT_KEYS = (
    "nodes",
    "feature_names",
    "step",
    "input_len",
    "input_offsets",
    "input_shape",
    "horizon",
    "target_offsets",
    "quantiles",
    "output_shape",
)


def interface_changes(old: OrtModel, new: OrtModel) -> list[str]:
    """What `new` changes about `old`'s interface, one phrase each (empty when a client cannot tell them apart)."""
    changes = [
        *_tensor_changes("input", old.signature.inputs, new.signature.inputs),
        *_tensor_changes("output", old.signature.outputs, new.signature.outputs),
    ]
    for key in CONTRACT_KEYS:
        if key in old.metadata and key in new.metadata:
            before, after = _value(old.metadata[key]), _value(new.metadata[key])
            if before != after:
                changes.append(f"metadata '{key}' {_short(before)} -> {_short(after)}")
    return changes


def _tensor_changes(kind: str, old: tuple[TensorSpec, ...], new: tuple[TensorSpec, ...]) -> list[str]:
    before, after = {t.name: t for t in old}, {t.name: t for t in new}
    if before.keys() != after.keys():
        return [f"{kind}s {sorted(before)} -> {sorted(after)}"]
    changes = []
    for name, spec in before.items():
        if spec.datatype != after[name].datatype:
            changes.append(f"{kind} '{name}' datatype {spec.datatype} -> {after[name].datatype}")
        if not _same_shape(spec.shape, after[name].shape):
            changes.append(f"{kind} '{name}' shape {list(spec.shape)} -> {list(after[name].shape)}")
    return changes


def _same_shape(old: tuple[int, ...], new: tuple[int, ...]) -> bool:
    """Same rank, and every axis known on both sides has the same size: a dynamic axis (-1, such as the batch axis,
    or an output axis the exporter could not infer) matches any size."""
    return len(old) == len(new) and all(o == n or -1 in (o, n) for o, n in zip(old, new, strict=True))


def _value(text: str) -> Any:
    """A metadata value as JSON (the exporter writes JSON), so formatting alone is no change."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."
