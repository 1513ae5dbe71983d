"""Inputs that break the channel facts a model's exporter recorded are refused, naming the channel, the value, its
place and what the channel holds; the facts are repeated on the tensors of ModelMetadata for clients."""

import json

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tc
from tritonclient.utils import InferenceServerException

from cityagent.serving.errors import InvalidInput
from cityagent.serving.input_check import ChannelFacts
from cityagent.serving.proto import inference_pb2 as pb
from cityagent.serving.proto import inference_pb2_grpc as pb_grpc
from tests.serving import onnx_models as om
from tests.serving.conftest import NAME, triton_input

FACTS = {
    "feature_names": ["speed", "tod"],
    "input_ranges": {"speed": [0, 300], "tod": [0, 1]},
    "calendar": {"tod": "time of day in [0, 1)"},
    "timezone": "Asia/Shanghai",
}


@pytest.fixture
def server(start_server, tmp_path):
    path = tmp_path / "facts.onnx"
    path.write_bytes(om.linear_model(**FACTS).SerializeToString())
    return start_server([f"{NAME}={path}"])


def window(speed: float = 50.0, tod: float = 0.35) -> np.ndarray:
    x = np.empty((2, om.T, om.N, om.F), np.float32)
    x[..., 0], x[..., 1] = speed, tod
    return x


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (  # the reviewer's example: finite, absurd, and the linear model answers it without overflowing
            window(speed=3.4e38),
            "channel 'speed' (index 0 of its last axis) holds 3.4e+38 at [0, 0, 0], outside its valid range 0 to 300;"
            " send real units",
        ),
        (window(speed=-1), "holds -1 at [0, 0, 0], outside its valid range 0 to 300; send real units"),
        (
            window(tod=-7),
            "channel 'tod' (index 1 of its last axis) holds -7 at [0, 0, 0], outside its valid range 0 to 1; tod is "
            "time of day in [0, 1), in Asia/Shanghai wall time.",
        ),
    ],
)
def test_a_channel_out_of_its_range_is_invalid_argument(server, x, message):
    with tc.InferenceServerClient(server.address) as client:
        with pytest.raises(InferenceServerException) as info:
            client.infer(NAME, [triton_input(x)])
        assert info.value.status() == "StatusCode.INVALID_ARGUMENT" and message in info.value.message()
        ok = client.infer(NAME, [triton_input(window())]).as_numpy("y")
    np.testing.assert_allclose(ok, om.reference(window()), rtol=1e-5)


def test_the_facts_ride_on_the_tensors_they_are_about(server):
    with grpc.insecure_channel(server.address) as channel:
        meta = pb_grpc.GRPCInferenceServiceStub(channel).ModelMetadata(pb.ModelMetadataRequest(name=NAME))
    x = {k: json.loads(v.string_param) for k, v in meta.inputs[0].parameters.items()}
    y = {k: json.loads(v.string_param) for k, v in meta.outputs[0].parameters.items()}
    assert x["timezone"] == "Asia/Shanghai" and x["feature_names"] == ["speed", "tod"]
    assert x["input_ranges"] == FACTS["input_ranges"] and x["nodes"] == om.NODES and "units" not in x
    assert y["units"] == "km/h" and y["target_offsets"] == [1, 2] and "feature_names" not in y


def facts(**metadata) -> ChannelFacts:
    return ChannelFacts.from_metadata({k: json.dumps(v) for k, v in metadata.items()}, "x")


def test_a_one_hot_group_must_hold_exactly_one_1_per_step_and_node():
    names = ["speed", *[f"dow_{d}" for d in range(7)]]
    check = facts(
        feature_names=names,
        input_ranges={},
        one_hot=[names[1:]],
        calendar={"dow_0": "day of week one-hot, 7 columns, Monday first"},
        timezone="Asia/Shanghai",
    )
    x = np.zeros((1, 2, 3, 8), np.float32)
    x[..., 1] = 1  # Monday everywhere
    check.check(x)
    x[0, 1, 2, 1] = 0  # one step of one node left without a weekday
    broken = r"channels dow_0 … dow_6 must be one-hot .*Monday first, in Asia/Shanghai wall time\); at \[0, 1, 2\] "
    with pytest.raises(InvalidInput, match=broken + r"they sum to 0\."):
        check.check(x)
    x[0, 1, 2, 1] = 0.5  # sums to 1 with another half: not one-hot either
    x[0, 1, 2, 2] = 0.5
    with pytest.raises(InvalidInput, match=r"at \[0, 1, 2\] they sum to 1\."):
        check.check(x)


def test_a_model_exported_without_facts_is_checked_as_before():
    assert ChannelFacts.from_metadata({"feature_names": json.dumps(["speed"])}, "x") is None
    loose = facts(feature_names=["speed", "flow"], input_ranges={})
    loose.check(np.full((1, 2, 3, 2), -5.0, np.float32))  # nothing recorded, nothing refused
