"""Tiny hand-built ONNX models shaped like the exporter's: x [batch, T, N, F] float32 -> y [batch, H, N] float32.

Built with onnx.helper (no torch import, milliseconds), with JSON metadata_props like cityagent.training's.
"""

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

T, N, F, H = 4, 3, 2, 2
NODES = ["s0", "s1", "s2"]


def weights(scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """W [T*F, H] and c [H]; `scale` makes versions give different answers."""
    rng = np.random.default_rng(0)
    return (rng.normal(size=(T * F, H)) * scale).astype(np.float32), (np.arange(H) * scale).astype(np.float32)


def reference(x: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """What linear_model(scale) computes, in numpy: y[b, h, n] = sum_{t,f} x[b, t, n, f] W[t*F+f, h] + c[h]."""
    w, c = weights(scale)
    z = x.transpose(0, 2, 1, 3).reshape(len(x), N, T * F) @ w + c  # [B, N, H]
    return z.transpose(0, 2, 1)  # [B, H, N]


def _metadata(**overrides) -> dict[str, str]:
    facts = {
        "task": "traffic-test", "domain": "traffic", "nodes": NODES, "step": "5min", "input_len": T, "horizon": H,
        "input_offsets": list(range(-T + 1, 1)), "target_offsets": list(range(1, H + 1)),
        "feature_names": ["speed", "flow"], "units": "km/h", "quantiles": None, "run_id": "test",
    }  # fmt: skip
    return {k: json.dumps(v) for k, v in {**facts, **overrides}.items()}


def _model(ops: list, initializers: list, n: int = N, f: int = F, h: int = H, elem: int = TensorProto.FLOAT,
           symbolic: bool = False, **metadata) -> onnx.ModelProto:  # fmt: skip
    """`symbolic`: output axes named, not sized, as older exports of the GRU and risk nets left them (the sizes
    then only in the output_shape metadata)."""
    x = helper.make_tensor_value_info("x", elem, ["batch", T, n, f])
    y = helper.make_tensor_value_info(
        "y", elem, ["batch", "Casty_dim_1", "Casty_dim_2"] if symbolic else ["batch", h, n]
    )
    if symbolic:  # y = Reshape(y, Shape(y)): a no-op whose output sizes ONNX shape inference cannot know
        for node in ops:
            node.output[:] = ["y_sized" if o == "y" else o for o in node.output]
        ops = [*ops, helper.make_node("Shape", ["y_sized"], ["y_shape"])]
        ops.append(helper.make_node("Reshape", ["y_sized", "y_shape"], ["y"]))
        metadata = {"output_names": ["y"], "output_shape": [-1, h, n], **metadata}
    graph = helper.make_graph(ops, "tiny", [x], [y], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in _metadata(**metadata).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model


def _linear_nodes(scale: float, out: str) -> tuple[list, list]:
    w, c = weights(scale)
    inits = [
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(c, "c"),
        numpy_helper.from_array(np.array([0, N, T * F], dtype=np.int64), "shape"),
    ]
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1, 3]),  # [B, N, T, F]
        helper.make_node("Reshape", ["xt", "shape"], ["xf"]),  # [B, N, T*F]
        helper.make_node("MatMul", ["xf", "W"], ["z0"]),  # [B, N, H]
        helper.make_node("Add", ["z0", "c"], ["z1"]),
        helper.make_node("Transpose", ["z1"], [out], perm=[0, 2, 1]),  # [B, H, N]
    ]
    return nodes, inits


def linear_model(scale: float = 1.0, symbolic: bool = False, **metadata) -> onnx.ModelProto:
    """y = reference(x, scale); `metadata` overrides facts of the metadata_props (e.g. nodes=[...])."""
    nodes, inits = _linear_nodes(scale, "y")
    return _model(nodes, inits, symbolic=symbolic, **metadata)


def sliced_model(
    n: int = N, f: int = F, h: int = H, elem: int = TensorProto.FLOAT, symbolic: bool = False, **metadata
) -> onnx.ModelProto:
    """x [batch, T, n, f] -> y = x[:, :h, :, 0] [batch, h, n] of ONNX type `elem`: a model of another interface."""
    inits = [
        numpy_helper.from_array(np.array(0, dtype=np.int64), "first"),
        *(numpy_helper.from_array(np.array([v], dtype=np.int64), k) for k, v in (("h0", 0), ("h1", h), ("ax", 1))),
    ]
    nodes = [
        helper.make_node("Gather", ["x", "first"], ["x0"], axis=3),  # [B, T, n]
        helper.make_node("Slice", ["x0", "h0", "h1", "ax"], ["y"]),  # [B, h, n]
    ]
    return _model(nodes, inits, n=n, f=f, h=h, elem=elem, symbolic=symbolic, **metadata)


def failing_model() -> onnx.ModelProto:
    """Loads fine, fails at run time (a Gather index out of range), so only a smoke inference catches it."""
    nodes, inits = _linear_nodes(1.0, "z")
    inits.append(numpy_helper.from_array(np.array([0, 1, 99], dtype=np.int64), "idx"))
    nodes.append(helper.make_node("Gather", ["z", "idx"], ["y"], axis=2))
    return _model(nodes, inits)


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def window(batch: int = 1, seed: int = 1) -> np.ndarray:
    """Real-unit inputs x [batch, T, N, F] float32."""
    return np.random.default_rng(seed).uniform(0, 80, size=(batch, T, N, F)).astype(np.float32)
