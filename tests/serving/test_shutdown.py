"""Shutdown: requests in flight are answered, new ones are refused with UNAVAILABLE, and open streams stop reading,
answer what they read and end with UNAVAILABLE, so their clients reconnect and resend what was not answered."""

import queue
import threading
import time

import grpc
import pytest

from cityagent.serving.proto import inference_pb2 as pb
from cityagent.serving.proto import inference_pb2_grpc as pb_grpc
from tests.serving import onnx_models as om
from tests.serving.conftest import NAME, blocked_workers, wait_until

SHUTTING_DOWN = "the server is shutting down; reconnect and resend unanswered requests"


def _request(request_id: str) -> pb.ModelInferRequest:
    x = om.window(seed=len(request_id))
    request = pb.ModelInferRequest(model_name=NAME, id=request_id)
    request.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(x.tobytes())
    return request


def test_a_stream_open_at_shutdown_answers_what_it_read_then_ends_unavailable(start_server, linear_path):
    grace_s = 10.0
    server = start_server([f"{NAME}={linear_path}"], grace_s=grace_s, batching={"inline_below_us": 0})
    registry = server.server.metrics.registry

    def started() -> float:
        return registry.get_sample_value("cityagent_serving_requests_total", {"model": NAME}) or 0

    outbox: queue.Queue = queue.Queue()
    answers: list = []
    ended: list[grpc.RpcError] = []
    with grpc.insecure_channel(server.address) as channel:
        call = pb_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer(iter(outbox.get, None), timeout=60)

        def read() -> None:
            try:
                for answer in call:
                    answers.append(answer)
            except grpc.RpcError as e:
                ended.append(e)

        reader = threading.Thread(target=read)
        reader.start()
        outbox.put(_request("a"))
        wait_until(lambda: len(answers) == 1)
        with blocked_workers(server):  # b and c are read, but wait for a worker while the server begins to stop
            outbox.put(_request("b"))
            outbox.put(_request("c"))
            wait_until(lambda: started() == 3)
            stopper = threading.Thread(target=server.stop)
            stopper.start()
            wait_until(lambda: server.server.dataplane.stopping.is_set())
            time.sleep(0.1)
            outbox.put(_request("late"))  # sent after shutdown began: never read, so never answered
            time.sleep(0.2)
            released = time.monotonic()
        stopper.join(30)
        reader.join(30)
        outbox.put(None)
    assert time.monotonic() - released < grace_s / 2  # the stream ended itself; gRPC did not wait out the grace
    assert sorted(a.infer_response.id for a in answers) == ["a", "b", "c"]
    assert [a.error_message for a in answers] == ["", "", ""]
    assert started() == 3
    (error,) = ended
    assert error.code() == grpc.StatusCode.UNAVAILABLE and SHUTTING_DOWN in error.details()


def test_calls_arriving_once_shutdown_began_are_refused_unavailable(start_server, linear_path):
    server = start_server([f"{NAME}={linear_path}"])

    async def stop_taking_requests() -> None:  # what stop() does first, without closing the port behind it
        server.server.dataplane.stop_taking_requests()

    server.call(stop_taking_requests())
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as unary:
            stub.ModelInfer(_request("u"), timeout=10)
        with pytest.raises(grpc.RpcError) as stream:
            list(stub.ModelStreamInfer(iter([_request("s")]), timeout=10))
    for info in (unary, stream):
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE and SHUTTING_DOWN in info.value.details()
    registry = server.server.metrics.registry
    assert registry.get_sample_value("cityagent_serving_failures_total", {"model": NAME, "code": "UNAVAILABLE"}) == 1
