"""The server never crashes: 1,000+ random malformed requests over a raw gRPC stub, then a valid one still works."""

import math
import re

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cityagent.serving.background import ServerThread
from cityagent.serving.config import ServingConfig
from cityagent.serving.datatypes import NUMPY
from cityagent.serving.proto import inference_pb2 as pb
from cityagent.serving.proto import inference_pb2_grpc as pb_grpc
from tests.serving import onnx_models as om
from tests.serving.conftest import NAME

EXAMPLES = 1000
# A well-formed protobuf may be refused, never answered with UNKNOWN/INTERNAL (an unhandled server error).
ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}


@pytest.fixture(scope="module")
def channel(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYAGENT_HOME", str(root / "home"))
        path = om.save(om.linear_model(), root / "model.onnx")
        cfg = ServingConfig(port=0, metrics_port=None, models=[f"{NAME}={path}"])
        with ServerThread(cfg) as server, grpc.insecure_channel(server.address) as ch:
            yield ch


shapes = st.one_of(
    st.just([1, om.T, om.N, om.F]),
    st.lists(st.integers(0, 5), max_size=5),
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=5),
    st.lists(st.sampled_from([0, 1, 2**20, 2**31, 2**63 - 1]), max_size=4),  # empty yet "huge" tensors
)
# Biased towards what the model accepts, so that many requests get past the wire checks to the model's own.
datatypes = st.one_of(
    st.just("FP32"), st.just("FP32"), st.sampled_from([*NUMPY, "BYTES", "", "FLOAT"]), st.text(max_size=6)
)
tensor_names = st.one_of(st.just("x"), st.just("x"), st.sampled_from(["y", "", "X"]), st.text(max_size=8))
typed_values = {
    "bool_contents": st.lists(st.booleans(), max_size=30),
    "int_contents": st.lists(st.integers(-(2**31), 2**31 - 1), max_size=30),
    "int64_contents": st.lists(st.integers(-(2**63), 2**63 - 1), max_size=30),
    "uint_contents": st.lists(st.integers(0, 2**32 - 1), max_size=30),
    "uint64_contents": st.lists(st.integers(0, 2**64 - 1), max_size=30),
    "fp32_contents": st.lists(st.floats(width=32), max_size=30),
    "fp64_contents": st.lists(st.floats(), max_size=30),
    "bytes_contents": st.lists(st.binary(max_size=8), max_size=5),
}


@st.composite
def tensors(draw) -> tuple[pb.ModelInferRequest.InferInputTensor, bytes | None]:
    """One input tensor and its raw bytes (None: none sent); sizes are right often enough to reach deep checks."""
    tensor = pb.ModelInferRequest.InferInputTensor(
        name=draw(tensor_names), datatype=draw(datatypes), shape=draw(shapes)
    )
    if draw(st.integers(0, 3)) == 0:
        field = draw(st.sampled_from(sorted(typed_values)))
        getattr(tensor.contents, field).extend(draw(typed_values[field]))
    count = math.prod(tensor.shape) if all(0 <= d < 100 for d in tensor.shape) else -1
    size = NUMPY[tensor.datatype].itemsize if tensor.datatype in NUMPY else 4
    kind = draw(st.sampled_from(["none", "random", "exact", "exact", "exact-nan"]))
    if kind == "random" or (kind.startswith("exact") and not 0 <= count <= 10_000):
        return tensor, draw(st.binary(max_size=256))
    if kind == "exact":
        values = draw(st.sampled_from([0.0, 1.0, 55.5]))
        return tensor, (np.full(count, values, np.float64).astype(NUMPY.get(tensor.datatype, np.float32))).tobytes()
    if kind == "exact-nan":
        return tensor, np.full(count * size, 0xFF, np.uint8).tobytes()  # all-ones bytes: NaN in floats
    return tensor, None


@st.composite
def requests(draw) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(
        model_name=draw(st.one_of(st.just(NAME), st.text(max_size=12))),
        model_version=draw(st.sampled_from(["", "1", "2", "-1", "01"])),
        id=draw(st.text(max_size=8)),
    )
    pairs = draw(st.lists(tensors(), min_size=draw(st.sampled_from([0, 1, 1])), max_size=3))
    for tensor, _ in pairs:
        request.inputs.append(tensor)
    raws = [raw for _, raw in pairs]
    mode = draw(st.sampled_from(["per-input", "per-input", "per-input", "none", "extra"]))
    if mode == "per-input" and all(r is not None for r in raws):
        request.raw_input_contents.extend(raws)
    elif mode == "extra":
        request.raw_input_contents.extend([r or b"" for r in raws] + [b"\0" * 4])
    for name in draw(st.lists(st.sampled_from(["y", "x", "", "z"]), max_size=2)):
        request.outputs.add(name=name)
    if draw(st.booleans()):
        request.parameters["p"].int64_param = draw(st.integers(-(2**63), 2**63 - 1))
    if request.model_name == NAME and draw(st.booleans()):
        request.parameters["binary_data_output"].bool_param = True
    return request


def _valid(batch: int, seed: int) -> pb.ModelInferRequest:
    x = om.window(batch, seed=seed)
    request = pb.ModelInferRequest(model_name=NAME)
    request.inputs.add(name="x", datatype="FP32", shape=x.shape)
    request.raw_input_contents.append(x.tobytes())
    return request


def _poke(raw: bytes, index: int, value: float) -> bytes:
    at = 4 * (index % max(1, len(raw) // 4))
    return raw[:at] + np.float32(value).tobytes() + raw[at + 4 :]


MUTATIONS = {
    "none": lambda r, d: None,
    "nan": lambda r, d: r.raw_input_contents.__setitem__(0, _poke(r.raw_input_contents[0], d, np.nan)),
    "inf": lambda r, d: r.raw_input_contents.__setitem__(0, _poke(r.raw_input_contents[0], d, -np.inf)),
    "dim": lambda r, d: r.inputs[0].shape.__setitem__(d % 4, r.inputs[0].shape[d % 4] + 1 + d % 3),
    "rank": lambda r, d: r.inputs[0].shape.append(1),
    "dtype": lambda r, d: setattr(r.inputs[0], "datatype", ["FP64", "FP16", "INT32", "UINT8", "BOOL"][d % 5]),
    "bytes": lambda r, d: r.raw_input_contents.__setitem__(0, r.raw_input_contents[0][: -(1 + d % 8)]),
    "name": lambda r, d: setattr(r.inputs[0], "name", ["y", "X", "", "x "][d % 4]),
    "version": lambda r, d: setattr(r, "model_version", ["2", "0", "1.0", " "][d % 4]),
    "extra-input": lambda r, d: (
        r.inputs.add(name="z", datatype="FP32", shape=[1]),
        r.raw_input_contents.append(b"\0" * 4),
    ),
    "typed-too": lambda r, d: r.inputs[0].contents.fp32_contents.extend([0.0] * d),
    "output": lambda r, d: r.outputs.add(name=["z", "x", "", "y"][d % 4]),
    "id": lambda r, d: setattr(r, "id", "é" * d),
}


@st.composite
def near_valid_requests(draw) -> pb.ModelInferRequest:
    """A valid request with 0-2 mutations: these reach the model-level checks (shape, dtype, NaN/Inf) and batching."""
    request = _valid(draw(st.integers(1, 4)), draw(st.integers(0, 10_000)))
    names = draw(st.lists(st.sampled_from(sorted(MUTATIONS)), max_size=2))
    for name in names:
        MUTATIONS[name](request, draw(st.integers(0, 1000)))
    return request


@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(request=st.one_of(requests(), near_valid_requests()), garbage=st.one_of(st.none(), st.binary(max_size=64)))
def test_random_malformed_requests_never_crash_the_server(channel, request, garbage):
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    try:
        stub.ModelInfer(request, timeout=10)
        code = grpc.StatusCode.OK
    except grpc.RpcError as e:
        code = e.code()
        assert code in ALLOWED, f"{code}: {e.details()}"
        assert e.details()  # every refusal says why
        event(re.sub(r"'[^']*'|\[[^]]*\]|\d+", "_", e.details())[:50])  # --hypothesis-show-statistics: checks reached
    event(code.name)
    if garbage is not None:  # bytes that may not even parse as a ModelInferRequest
        raw = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        try:
            raw(garbage, timeout=10)
        except grpc.RpcError as e:
            assert e.code() in ALLOWED, f"{e.code()}: {e.details()}"


def test_after_the_fuzzing_a_valid_request_still_succeeds(channel):
    # Runs after the fuzz test in file order, on the same server (module-scoped channel).
    x = om.window(2)
    request = pb.ModelInferRequest(model_name=NAME)
    request.inputs.add(name="x", datatype="FP32", shape=x.shape)
    request.raw_input_contents.append(x.tobytes())
    response = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
    y = np.frombuffer(response.raw_output_contents[0], "<f4").reshape(response.outputs[0].shape)
    np.testing.assert_allclose(y, om.reference(x), rtol=1e-5, atol=1e-4)
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    assert stub.ServerLive(pb.ServerLiveRequest()).live and stub.ServerReady(pb.ServerReadyRequest()).ready
