"""Decoding and checking requests without a server: every malformed tensor names the input and what was expected."""

import numpy as np
import pytest

from cityagent.serving.codec import decode_request, encode_response
from cityagent.serving.errors import InvalidInput
from cityagent.serving.payload import InferResponse
from cityagent.serving.proto import inference_pb2 as pb
from cityagent.serving.signature import Signature, TensorSpec

SIG = Signature(inputs=(TensorSpec("x", "FP32", (-1, 4, 3, 2)),), outputs=(TensorSpec("y", "FP32", (-1, 2, 3)),))


def request(x: np.ndarray, name: str = "x", datatype: str = "FP32", raw: bytes | None = None) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name="m")
    req.inputs.add(name=name, datatype=datatype, shape=x.shape)
    req.raw_input_contents.append(x.tobytes() if raw is None else raw)
    return req


def test_raw_contents_decode_to_a_read_only_view_without_copying():
    x = np.arange(24, dtype=np.float32).reshape(1, 4, 3, 2)
    req = request(x)
    got = decode_request(req).inputs["x"]
    np.testing.assert_array_equal(got, x)
    assert not got.flags.writeable  # a view of the request bytes, not a copy
    assert got.base is not None


def test_typed_contents_decode():
    req = pb.ModelInferRequest(model_name="m")
    t = req.inputs.add(name="x", datatype="INT64", shape=[2, 2])
    t.contents.int64_contents.extend([1, 2, 3, 4])
    np.testing.assert_array_equal(decode_request(req).inputs["x"], [[1, 2], [3, 4]])


def _repeat_input(req: pb.ModelInferRequest) -> None:
    req.inputs.add().CopyFrom(req.inputs[0])
    req.raw_input_contents.append(req.raw_input_contents[0])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda r: r.raw_input_contents.__setitem__(0, b"\0" * 7),
            "has 7 raw bytes but shape [1, 4, 3, 2] of FP32 needs 96",
        ),
        (lambda r: setattr(r.inputs[0], "datatype", "FLOAT"), "datatype 'FLOAT'; expected one of"),
        (lambda r: r.inputs[0].shape.__setitem__(0, -1), "every dimension must be >= 1 (ModelMetadata's -1 stands"),
        (lambda r: r.inputs[0].shape.__setitem__(0, 0), "every dimension must be >= 1"),
        (lambda r: r.inputs[0].ClearField("shape"), "has shape [] (a scalar); give its full shape"),
        (lambda r: r.inputs[0].contents.fp32_contents.append(1.0), "both typed contents and raw_input_contents"),
        (lambda r: r.raw_input_contents.append(b""), "2 raw_input_contents for 1 inputs"),
        (lambda r: _repeat_input(r), "appears twice"),
    ],
)
def test_malformed_wire_tensors_are_invalid_argument(mutate, message):
    req = request(np.zeros((1, 4, 3, 2), np.float32))
    mutate(req)
    with pytest.raises(InvalidInput, match=r"input 'x'|raw_input_contents") as info:
        decode_request(req)
    assert message in str(info.value)


def test_empty_tensors_with_huge_dimensions_are_refused_not_crashed_on():
    for shape, message in (
        ([1, 2**62], "at most 1099511627776 elements"),
        ([2, 2**31 - 1, 2**31 - 1], "at most 1099511627776 elements"),
        ([0, 2**62], "every dimension must be >= 1"),
    ):
        req = pb.ModelInferRequest(model_name="m")
        req.inputs.add(name="x", datatype="FP32", shape=shape)
        req.raw_input_contents.append(b"")
        with pytest.raises(InvalidInput, match=message):
            decode_request(req)


def test_typed_contents_of_the_wrong_kind_or_count_are_refused():
    req = pb.ModelInferRequest(model_name="m")
    t = req.inputs.add(name="x", datatype="FP32", shape=[2])
    t.contents.fp64_contents.extend([1.0, 2.0])
    with pytest.raises(InvalidInput, match="carries fp64_contents; put its values in fp32_contents"):
        decode_request(req)
    t.contents.ClearField("fp64_contents")
    t.contents.fp32_contents.append(1.0)
    with pytest.raises(InvalidInput, match="1 values in fp32_contents but shape \\[2\\] needs 2"):
        decode_request(req)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros((1, 4, 3, 2), np.float64), "input 'x' has datatype FP64 but the model expects FP32"),
        (np.zeros((1, 4, 3, 3), np.float32), "input 'x' has shape [1, 4, 3, 3] but the model expects [-1, 4, 3, 2]"),
        (np.zeros((4, 3, 2), np.float32), "input 'x' has shape [4, 3, 2] but the model expects"),
        (np.zeros((0, 4, 3, 2), np.float32), "every dimension must be >= 1"),
        (np.full((1, 4, 3, 2), np.nan, np.float32), "input 'x' contains NaN or Inf"),
        (np.full((1, 4, 3, 2), np.inf, np.float32), "input 'x' contains NaN or Inf"),
    ],
)
def test_inputs_that_do_not_fit_the_model_are_refused(x, message):
    with pytest.raises(InvalidInput) as info:
        SIG.check_inputs({"x": x})
    assert message in str(info.value)


def test_wrong_or_missing_input_names_are_refused():
    with pytest.raises(InvalidInput, match="input 'speed' is not an input of this model; expected \\['x'\\]"):
        SIG.check_inputs({"speed": np.zeros((1, 4, 3, 2), np.float32)})
    with pytest.raises(InvalidInput, match="input 'x' is missing"):
        SIG.check_inputs({})
    with pytest.raises(InvalidInput, match="output 'z' is not an output"):
        SIG.check_outputs(["z"])


def test_responses_carry_raw_little_endian_contents():
    y = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    out = encode_response(InferResponse("m", "3", "req-1", {"y": y}))
    assert (out.model_version, out.id, out.outputs[0].datatype, list(out.outputs[0].shape)) == (
        "3",
        "req-1",
        "FP32",
        [1, 2, 3],
    )
    assert not out.outputs[0].HasField("contents")
    np.testing.assert_array_equal(np.frombuffer(out.raw_output_contents[0], "<f4").reshape(1, 2, 3), y)
