"""Back-pressure and size limits: a full queue answers RESOURCE_EXHAUSTED at once, oversized messages are refused."""

import asyncio
import collections
import logging
import time

import grpc
import numpy as np
import tritonclient.grpc as tc
from tritonclient.utils import InferenceServerException

from cityagent.serving.proto import inference_pb2 as pb
from cityagent.serving.proto import inference_pb2_grpc as pb_grpc
from tests.serving import onnx_models as om
from tests.serving.conftest import NAME, blocked_workers, collect, triton_input, wait_until


def test_a_full_queue_answers_resource_exhausted_and_the_rest_still_succeed(start_server, linear_path):
    server = start_server([f"{NAME}={linear_path}"], batching={"max_batch_size": 1, "max_queue_size": 2})
    outcomes: list = []
    with tc.InferenceServerClient(server.address) as client:
        with blocked_workers(server):  # nothing runs: two requests wait (plus one the batcher took), the rest bounce
            for i in range(8):
                client.async_infer(NAME, [triton_input(om.window(seed=i))], callback=collect(outcomes))
            registry = server.server.metrics.registry
            wait_until(lambda: registry.get_sample_value("cityagent_serving_requests_total", {"model": NAME}) == 8)
            labels = {"model": NAME, "code": "RESOURCE_EXHAUSTED"}
            refused = registry.get_sample_value("cityagent_serving_failures_total", labels)
            assert refused in (5, 6)
            wait_until(lambda: len(outcomes) == refused)  # refused at once, while nothing could run
        wait_until(lambda: len(outcomes) == 8)
        errors = [e for _, e in outcomes[: int(refused)]]
        served = [r.as_numpy("y") for r, e in outcomes[int(refused) :] if e is None]
        assert len(served) == 8 - refused
        assert all(e.status() == "StatusCode.RESOURCE_EXHAUSTED" for e in errors)
        assert f"queue full: model '{NAME}' has 2 requests waiting (batching.max_queue_size)" in errors[0].message()
        assert "retry with backoff" in errors[0].message()  # told apart from "message larger than max": no retry
        assert all(y.shape == (1, om.H, om.N) for y in served)
        assert client.infer(NAME, [triton_input(om.window())]).as_numpy("y").shape == (1, om.H, om.N)


def test_messages_over_max_message_mb_are_refused_naming_the_limit(start_server, linear_path, caplog):
    caplog.set_level(logging.INFO, logger="cityagent.serving.server")
    server = start_server([f"{NAME}={linear_path}"], max_message_mb=1)
    assert "requests and responses up to 1 MiB (max_message_mb)" in caplog.text  # the limit, said at startup
    big = np.zeros((12_000, om.T, om.N, om.F), np.float32)  # 1.15 MB
    with tc.InferenceServerClient(server.address) as client:
        try:
            client.infer(NAME, [triton_input(big)])
            raise AssertionError("an oversized request was accepted")
        except InferenceServerException as e:
            assert e.status() == "StatusCode.RESOURCE_EXHAUSTED"
            # what docs/serving-api.md tells clients to look for: not the queue, so not worth a retry
            assert "larger than max" in e.message() and f"vs. {2**20})" in e.message()
            assert "queue full" not in e.message()
        assert client.infer(NAME, [triton_input(big[:100])]).as_numpy("y").shape == (100, om.H, om.N)


def test_a_burst_beyond_grpc_cores_pending_limit_is_answered_not_cancelled(start_server, linear_path):
    """gRPC core cancels (bare CANCELLED, uncounted) calls beyond 1000 waiting for the event loop unless told
    otherwise: a burst of 3000 async calls must each get the server's own answer, OK or RESOURCE_EXHAUSTED."""
    server = start_server([f"{NAME}={linear_path}"], batching={"max_queue_size": 64})
    request = pb.ModelInferRequest(model_name=NAME)
    request.inputs.add(name="x", datatype="FP32", shape=[1, om.T, om.N, om.F])
    request.raw_input_contents.append(om.window().tobytes())
    n = 3000

    async def burst() -> collections.Counter:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)

            async def one():
                try:
                    await stub.ModelInfer(request, timeout=60)
                    return "OK"
                except grpc.aio.AioRpcError as e:
                    return e.code().name, e.details().split(":")[0]

            return collections.Counter(await asyncio.gather(*(one() for _ in range(n))))

    outcomes = asyncio.run(burst())
    assert set(outcomes) <= {"OK", ("RESOURCE_EXHAUSTED", "queue full")}, outcomes
    registry = server.server.metrics.registry
    assert registry.get_sample_value("cityagent_serving_requests_total", {"model": NAME}) == n  # every one seen
    refused = registry.get_sample_value(
        "cityagent_serving_failures_total", {"model": NAME, "code": "RESOURCE_EXHAUSTED"}
    )
    assert (refused or 0) == outcomes[("RESOURCE_EXHAUSTED", "queue full")]


def test_clients_pinging_at_the_configured_keepalive_interval_keep_their_connection(start_server, linear_path):
    """gRPC's default answers a client's keepalive pings more often than every 5 minutes (any, on an idle connection)
    with GOAWAY "too_many_pings" after three; `keepalive.min_ping_interval_s` sets what the server accepts."""
    server = start_server([f"{NAME}={linear_path}"], keepalive={"min_ping_interval_s": 1.0})
    options = [
        ("grpc.keepalive_time_ms", 1000),  # gRPC clients ping at most once a second whatever this says
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    states: list[str] = []
    with grpc.insecure_channel(server.address, options=options) as channel:
        channel.subscribe(lambda state: states.append(state.name))
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
        time.sleep(4)  # four pings on an idle connection: the old policy sent GOAWAY at the fourth
        assert states[-1] == "READY" and "IDLE" not in states[states.index("READY") :], states  # no GOAWAY
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
