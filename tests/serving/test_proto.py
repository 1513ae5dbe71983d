"""The committed OIP stubs match the .proto, carry the spec's field numbers, and coexist with tritonclient."""

import os
import subprocess
import sys
from pathlib import Path

from cityagent.serving.proto import inference_pb2 as pb

PROTO_DIR = Path(__file__).resolve().parents[2] / "serving" / "proto"
GENERATED = ("inference_pb2.py", "inference_pb2.pyi", "inference_pb2_grpc.py")


def test_regenerating_the_stubs_gives_the_committed_files(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(["bash", str(PROTO_DIR / "generate.sh"), str(tmp_path)], check=True, env=env, capture_output=True)
    for name in GENERATED:
        assert (tmp_path / name).read_bytes() == (PROTO_DIR / name).read_bytes(), f"{name} drifted: run generate.sh"


def test_field_numbers_are_the_open_inference_protocols():
    def numbers(message) -> dict[str, int]:
        return {f.name: f.number for f in message.DESCRIPTOR.fields}

    assert numbers(pb.ModelInferRequest) == {
        "model_name": 1, "model_version": 2, "id": 3, "parameters": 4, "inputs": 5, "outputs": 6,
        "raw_input_contents": 7,
    }  # fmt: skip
    assert numbers(pb.ModelInferRequest.InferInputTensor) == {
        "name": 1, "datatype": 2, "shape": 3, "parameters": 4, "contents": 5,
    }  # fmt: skip
    assert numbers(pb.ModelInferResponse) == {
        "model_name": 1, "model_version": 2, "id": 3, "parameters": 4, "outputs": 5, "raw_output_contents": 6,
    }  # fmt: skip
    assert numbers(pb.InferParameter) == {
        "bool_param": 1, "int64_param": 2, "string_param": 3, "double_param": 4, "uint64_param": 5,
    }  # fmt: skip
    assert list(numbers(pb.InferTensorContents).values()) == list(range(1, 9))
    assert numbers(pb.ModelMetadataResponse.TensorMetadata)["shape"] == 3
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == "inference.GRPCInferenceService"
    assert {m.name for m in service.methods} == {
        "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer", "ModelStreamInfer",
    }  # fmt: skip


def test_our_messages_and_tritonclients_live_in_one_process_and_agree_on_the_wire():
    from tritonclient.grpc import service_pb2 as triton

    ours = pb.ModelInferRequest(model_name="m", model_version="2", id="7")
    ours.inputs.add(name="x", datatype="FP32", shape=[1, 2])
    ours.raw_input_contents.append(b"\0" * 8)
    theirs = triton.ModelInferRequest.FromString(ours.SerializeToString())
    assert (theirs.model_name, theirs.inputs[0].shape, theirs.raw_input_contents[0]) == ("m", [1, 2], b"\0" * 8)
    assert pb.DESCRIPTOR.pool is not triton.DESCRIPTOR.pool  # the private pool avoids duplicate-symbol errors


def test_our_servicer_answers_every_rpc_the_generated_base_leaves_unimplemented():
    """protoc's base class raises NotImplementedError per RPC; the server must override each one in the proto."""
    from cityagent.serving.proto import inference_pb2_grpc as pb_grpc
    from cityagent.serving.servicer import InferenceServicer

    rpcs = [m.name for m in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods]
    base = pb_grpc.GRPCInferenceServiceServicer
    assert len(rpcs) == 7 and all(hasattr(base, name) for name in rpcs)
    assert [name for name in rpcs if getattr(InferenceServicer, name) is getattr(base, name)] == []
