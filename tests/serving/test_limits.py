"""Back-pressure and size limits: a full queue answers RESOURCE_EXHAUSTED at once, oversized messages are refused."""

import logging

import numpy as np
import tritonclient.grpc as tc
from tritonclient.utils import InferenceServerException

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
