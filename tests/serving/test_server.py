"""A real server on 127.0.0.1 and the stock tritonclient: predictions, metadata, health, reflection, errors, metrics."""

import hashlib
import json
import threading
import time
import urllib.request

import grpc
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as tc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from tritonclient.utils import InferenceServerException

from cityagent.agent.sense import SERVER_PARAMETERS as AGENT_PLAIN
from cityagent.serving.background import ServerThread
from cityagent.serving.config import ServingConfig
from cityagent.serving.dataplane import SERVER_PARAMETERS
from cityagent.serving.errors import ModelLoadError
from cityagent.serving.proto import inference_pb2 as pb
from cityagent.serving.proto import inference_pb2_grpc as pb_grpc
from tests.serving import onnx_models as om
from tests.serving.conftest import NAME, blocked_workers, collect, triton_input, wait_until


@pytest.fixture
def server(start_server, linear_path):
    return start_server([f"{NAME}={linear_path}"])


@pytest.fixture
def client(server):
    with tc.InferenceServerClient(server.address) as c:
        yield c


def test_predictions_equal_onnx_runtime_in_process(client, linear_path):
    session = ort.InferenceSession(str(linear_path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        x = om.window(batch, seed=batch)
        result = client.infer(NAME, [triton_input(x)], request_id=f"r{batch}")
        np.testing.assert_array_equal(result.as_numpy("y"), session.run(None, {"x": x})[0])
        np.testing.assert_allclose(result.as_numpy("y"), om.reference(x), rtol=1e-5, atol=1e-4)
        response = result.get_response()
        assert (response.model_name, response.model_version, response.id) == (NAME, "1", f"r{batch}")


def test_concurrent_requests_are_batched_and_split_back_correctly(start_server, linear_path):
    server = start_server([f"{NAME}={linear_path}"], batching={"max_batch_size": 16})
    registry = server.server.metrics.registry
    xs = [om.window(1 + i % 3, seed=i) for i in range(12)]  # 24 rows in all
    answers: list = []
    with tc.InferenceServerClient(server.address) as client:
        with blocked_workers(server):  # let them pile up, as they would behind a busy run
            for i, x in enumerate(xs):
                client.async_infer(NAME, [triton_input(x)], request_id=str(i), callback=collect(answers))
            wait_until(lambda: registry.get_sample_value("cityagent_serving_requests_total", {"model": NAME}) == 12)
        wait_until(lambda: len(answers) == 12)
    for result, error in answers:
        assert error is None
        x = xs[int(result.get_response().id)]
        np.testing.assert_allclose(result.as_numpy("y"), om.reference(x), rtol=1e-5, atol=1e-4)
    runs = registry.get_sample_value("cityagent_serving_batch_size_count", {"model": NAME})
    rows = registry.get_sample_value("cityagent_serving_batch_size_sum", {"model": NAME})
    assert rows == 24 and runs <= 4  # at most 16 rows a run: the first alone, then the rest in two or three


def test_health_readiness_and_server_metadata(client, server):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(NAME) and client.is_model_ready(NAME, "1")
    assert not client.is_model_ready(NAME, "9") and not client.is_model_ready("nope")
    assert client.get_server_metadata().name == "cityagent"
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService"):
            assert (
                health.Check(health_pb2.HealthCheckRequest(service=service)).status
                == health_pb2.HealthCheckResponse.SERVING
            )


def test_reflection_describes_the_inference_and_health_services(server):
    with grpc.insecure_channel(server.address) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = set(db.get_services())
        assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= services
        proto = db.FindFileContainingSymbol("inference.GRPCInferenceService")
        assert {m.name for m in proto.service[0].method} >= {"ModelInfer", "ModelMetadata", "ServerLive"}


def test_model_metadata_carries_shapes_nodes_and_horizon(client, server, linear_path):
    meta = client.get_model_metadata(NAME)
    assert (meta.name, list(meta.versions), meta.platform) == (NAME, ["1"], "onnxruntime_onnx")
    assert (meta.inputs[0].name, meta.inputs[0].datatype, list(meta.inputs[0].shape)) == (
        "x",
        "FP32",
        [-1, om.T, om.N, om.F],
    )
    assert (meta.outputs[0].name, list(meta.outputs[0].shape)) == ("y", [-1, om.H, om.N])  # horizon H, N nodes
    with grpc.insecure_channel(server.address) as channel:  # the parameters extension, read with our own stub
        ours = pb_grpc.GRPCInferenceServiceStub(channel).ModelMetadata(pb.ModelMetadataRequest(name=NAME))
    params = {k: v.string_param for k, v in ours.parameters.items()}
    assert json.loads(params["nodes"]) == om.NODES
    assert json.loads(params["horizon"]) == om.H and json.loads(params["step"]) == "5min"
    # what the file is, whatever version this process numbered it
    assert params["onnx_sha256"] == hashlib.sha256(linear_path.read_bytes()).hexdigest()
    # every parameter but the server's own plain strings is JSON: what the agent (a client) relies on
    assert set(SERVER_PARAMETERS) <= set(params) and SERVER_PARAMETERS == AGENT_PLAIN
    [json.loads(v) for k, v in params.items() if k not in SERVER_PARAMETERS]  # raises on a non-JSON fact


@pytest.mark.parametrize(
    ("model", "version", "x", "name", "datatype", "code", "message"),
    [
        ("nope", "", om.window(), "x", "FP32", "NOT_FOUND", "model 'nope' is not served here"),
        (NAME, "7", om.window(), "x", "FP32", "NOT_FOUND", "has no version '7' here; ask for a served version (1)"),
        (NAME, "", om.window(), "speed", "FP32", "INVALID_ARGUMENT", "input 'speed' is not an input"),
        (
            NAME,
            "",
            om.window().astype(np.float64),
            "x",
            "FP64",
            "INVALID_ARGUMENT",
            "datatype FP64 but the model expects FP32",
        ),
        (
            NAME,
            "",
            om.window()[:, :3],
            "x",
            "FP32",
            "INVALID_ARGUMENT",
            "shape [1, 3, 3, 2] but the model expects [-1, 4, 3, 2]",
        ),
        (NAME, "", np.full((1, om.T, om.N, om.F), np.nan, np.float32), "x", "FP32", "INVALID_ARGUMENT", "NaN or Inf"),
        (  # finite, but absurd: the forecast overflows, and a NaN/Inf answer must not pass for a real one
            NAME,
            "",
            np.full((1, om.T, om.N, om.F), 3.4e38, np.float32),
            "x",
            "FP32",
            "INVALID_ARGUMENT",
            "input 'x' is out of the model's range: output 'y' came out NaN or Inf",
        ),
    ],
)
def test_bad_requests_get_the_right_status_and_say_what_was_expected(
    client, model, version, x, name, datatype, code, message
):
    with pytest.raises(InferenceServerException) as info:
        client.infer(model, [triton_input(x, name, datatype)], model_version=version)
    assert info.value.status() == f"StatusCode.{code}"
    assert message in info.value.message()


def test_raw_and_typed_contents_together_are_invalid_argument(server):
    req = pb.ModelInferRequest(model_name=NAME)
    tensor = req.inputs.add(name="x", datatype="FP32", shape=[1, om.T, om.N, om.F])
    tensor.contents.fp32_contents.extend([0.0] * (om.T * om.N * om.F))
    req.raw_input_contents.append(om.window().tobytes())
    with grpc.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.RpcError) as info:
            pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(req)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input 'x' has both typed contents and raw_input_contents" in info.value.details()


def test_typed_contents_are_accepted_and_answers_are_raw(server):
    x = om.window()
    req = pb.ModelInferRequest(model_name=NAME)
    req.inputs.add(name="x", datatype="FP32", shape=x.shape).contents.fp32_contents.extend(x.ravel().tolist())
    with grpc.insecure_channel(server.address) as channel:
        out = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(req)
    y = np.frombuffer(out.raw_output_contents[0], "<f4").reshape(out.outputs[0].shape)
    np.testing.assert_allclose(y, om.reference(x), rtol=1e-5, atol=1e-4)


def test_stream_infer_answers_every_request_and_reports_errors(client):
    answers: list = []
    done = threading.Event()

    def callback(result, error):
        answers.append((result, error))
        if len(answers) == 4:
            done.set()

    client.start_stream(callback=callback)
    for i in range(3):
        client.async_stream_infer(NAME, [triton_input(om.window(seed=i))], request_id=str(i))
    client.async_stream_infer("nope", [triton_input(om.window())], request_id="bad")
    assert done.wait(30)
    client.stop_stream()
    good = {r.get_response().id: r.as_numpy("y") for r, e in answers if e is None}
    assert sorted(good) == ["0", "1", "2"]
    for i in range(3):
        np.testing.assert_allclose(good[str(i)], om.reference(om.window(seed=i)), rtol=1e-5, atol=1e-4)
    errors = [e for r, e in answers if e is not None]
    assert len(errors) == 1 and "model 'nope' is not served here" in str(errors[0])


def _request(request_id: str, x: np.ndarray, model: str = NAME) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model, id=request_id)
    request.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(x.tobytes())
    return request


def test_stream_error_answers_carry_their_request_id_model_and_version(server):
    nan = om.window()
    nan[0, 1, 2, 0] = np.nan
    short = pb.ModelInferRequest(model_name=NAME, id="f")  # raw bytes that do not match the shape: a decode error
    short.inputs.add(name="x", datatype="FP32", shape=[1, om.T, om.N, om.F])
    short.raw_input_contents.append(b"\0" * 8)
    requests = [
        _request("a", om.window()),
        _request("b", om.window()[:, :2]),
        _request("c", nan),
        _request("d", om.window(), model="nope"),
        _request("e", om.window(seed=5)),
        short,
    ]
    with grpc.insecure_channel(server.address) as channel:
        answers = list(pb_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer(iter(requests), timeout=30))
    by_id = {a.infer_response.id: a for a in answers}
    assert sorted(by_id) == ["a", "b", "c", "d", "e", "f"]
    assert [by_id[i].error_message for i in "ae"] == ["", ""]
    expected = {"b": "has shape [1, 2, 3, 2]", "c": "contains NaN or Inf", "d": "model 'nope' is not served here"}
    expected["f"] = "has 8 raw bytes"
    for request_id, error in expected.items():
        answer = by_id[request_id]
        assert answer.error_message.startswith(f"request '{request_id}': ") and error in answer.error_message
    served = [(by_id[i].infer_response.model_name, by_id[i].infer_response.model_version) for i in "abcef"]
    assert served == [(NAME, "1")] * 5
    assert (by_id["d"].infer_response.model_name, by_id["d"].infer_response.model_version) == ("nope", "")
    # the status a unary call would end with, so a client tells retryable from permanent without parsing prose
    codes = {i: a.infer_response.parameters["status_code"].string_param for i, a in by_id.items() if a.error_message}
    assert codes == {"b": "INVALID_ARGUMENT", "c": "INVALID_ARGUMENT", "d": "NOT_FOUND", "f": "INVALID_ARGUMENT"}
    assert [list(by_id[i].infer_response.parameters) for i in "ae"] == [[], []]


def test_stream_errors_say_when_a_retry_may_succeed(start_server, linear_path):
    server = start_server([f"{NAME}={linear_path}"], batching={"max_batch_size": 1, "max_queue_size": 1})
    n = 6
    requests = [_request(str(i), om.window(seed=i)) for i in range(n)]
    with grpc.insecure_channel(server.address) as channel:
        with blocked_workers(server):  # one waiting (and one the batcher took): the rest find the queue full
            call = pb_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer(iter(requests), timeout=60)
            answers: list = []
            reader = threading.Thread(target=lambda: answers.extend(call))
            reader.start()
            wait_until(lambda: len(answers) >= n - 2)
        reader.join(60)
    refused = [a for a in answers if a.error_message]
    assert len(answers) == n and len(refused) in (n - 2, n - 1)  # the batcher may have taken one off the queue
    assert all("queue full" in a.error_message for a in refused)
    assert {a.infer_response.parameters["status_code"].string_param for a in refused} == {"RESOURCE_EXHAUSTED"}


def test_calls_cancelled_or_past_their_deadline_count_as_failures(start_server, linear_path):
    """A call the client gives up on counts in failures_total (CANCELLED or DEADLINE_EXCEEDED), not in nothing."""
    server = start_server([f"{NAME}={linear_path}"], batching={"inline_below_us": 0}, metrics_port=0)
    registry = server.server.metrics.registry

    def count(name: str, **labels) -> float:
        return registry.get_sample_value(f"cityagent_serving_{name}_total", {"model": NAME, **labels}) or 0

    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        stub.ModelInfer(_request("ok", om.window()), timeout=10)
        with blocked_workers(server):  # nothing answers: the calls wait until their client gives up
            expiring = [stub.ModelInfer.future(_request(f"e{i}", om.window()), timeout=0.5) for i in range(3)]
            cancelled = stub.ModelInfer.future(_request("c", om.window()))
            wait_until(lambda: count("requests") == 5)
            cancelled.cancel()
            for future in expiring:
                assert future.exception(10).code() == grpc.StatusCode.DEADLINE_EXCEEDED
            wait_until(lambda: count("failures", code="DEADLINE_EXCEEDED") == 3 and count("failures", code="CANCELLED"))
    assert (count("requests"), count("successes"), count("failures", code="CANCELLED")) == (5, 1, 1)
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.server.metrics_port}/metrics", timeout=10).read().decode()
    assert f'cityagent_serving_failures_total{{code="DEADLINE_EXCEEDED",model="{NAME}"}} 3.0' in text


def test_prometheus_metrics_count_requests_failures_and_the_loaded_version(start_server, linear_path):
    server = start_server([f"{NAME}={linear_path}"], metrics_port=0)
    client = tc.InferenceServerClient(server.address)
    client.infer(NAME, [triton_input(om.window())])
    with pytest.raises(InferenceServerException):
        client.infer(NAME, [triton_input(om.window()[:, :2])])
    with pytest.raises(InferenceServerException):
        client.infer("random-name", [triton_input(om.window())])
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.server.metrics_port}/metrics", timeout=10).read().decode()
    assert f'cityagent_serving_requests_total{{model="{NAME}"}} 2.0' in text
    assert f'cityagent_serving_successes_total{{model="{NAME}"}} 1.0' in text
    assert f'cityagent_serving_failures_total{{code="INVALID_ARGUMENT",model="{NAME}"}} 1.0' in text
    assert 'cityagent_serving_failures_total{code="NOT_FOUND",model="_unknown"} 1.0' in text
    assert f'cityagent_serving_loaded_version{{model="{NAME}",version="1"}} 1.0' in text
    for family in ("latency_seconds_bucket", "queue_seconds_bucket", "batch_size_bucket"):
        assert f"cityagent_serving_{family}" in text


def test_a_model_that_cannot_load_at_startup_is_one_clear_error(start_server, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    with pytest.raises(ModelLoadError, match="is not a loadable ONNX model"):
        start_server([f"{NAME}={broken}"])


def test_undecodable_bytes_are_invalid_argument_on_unary_and_stream_calls(server):
    good = pb.ModelInferRequest(model_name=NAME)
    good.inputs.add(name="x", datatype="FP32", shape=[1, om.T, om.N, om.F])
    good.raw_input_contents.append(om.window().tobytes())
    garbage = b"\xff\xff\xff"
    with grpc.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.RpcError) as info:
            channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")(garbage, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not a valid protobuf" in info.value.details()
        stream = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
        call = stream(iter([good.SerializeToString(), garbage]), timeout=10)
        with pytest.raises(grpc.RpcError) as info:
            list(call)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_symbolic_output_axes_are_served_with_the_sizes_the_export_recorded(start_server, tmp_path):
    """Older exports of the GRU and risk nets named the output axes instead of sizing them: ModelMetadata gave
    [-1, -1, -1] while the model's output_shape fact said [-1, H, N]."""
    path = om.save(om.linear_model(symbolic=True), tmp_path / "m.onnx")
    server = start_server([f"{NAME}={path}"])
    with tc.InferenceServerClient(server.address) as client:
        assert list(client.get_model_metadata(NAME).outputs[0].shape) == [-1, om.H, om.N]
        assert client.infer(NAME, [triton_input(om.window())]).as_numpy("y").shape == (1, om.H, om.N)
    lying = om.save(om.linear_model(symbolic=True, output_shape=[-1, 5, om.N]), tmp_path / "lying.onnx")
    with pytest.raises(ModelLoadError, match=r"output 'y' has shape \[1, 2, 3\], not \[-1, 5, 3\]"):
        start_server([f"{NAME}={lying}"])  # the smoke inference checks what the metadata claims


def test_a_model_still_loading_at_startup_is_unavailable_not_unknown(linear_path, monkeypatch):
    from cityagent.serving.sources import LocalSource

    loading = threading.Event()
    fetch = LocalSource.fetch

    def slow_fetch(self, spec, version, workdir):
        if spec.name == "slow":
            loading.wait(60)
        return fetch(self, spec, version, workdir)

    monkeypatch.setattr(LocalSource, "fetch", slow_fetch)
    models = [f"{NAME}={linear_path}", f"slow={linear_path}"]
    server = ServerThread(ServingConfig(port=0, metrics_port=None, models=models, registry={"poll_interval_s": 0}))
    starting = threading.Thread(target=server.start)
    starting.start()
    try:
        wait_until(lambda: server.server is not None and server.server.store.versions(NAME) == ["1"])
        with tc.InferenceServerClient(server.address) as client:
            assert not client.is_server_ready() and not client.is_model_ready("slow") and client.is_model_ready(NAME)
            for call in (
                lambda: client.infer("slow", [triton_input(om.window())]),
                lambda: client.infer("slow", [triton_input(om.window())], model_version="1"),
                lambda: client.get_model_metadata("slow"),
            ):
                with pytest.raises(InferenceServerException) as info:
                    call()
                assert info.value.status() == "StatusCode.UNAVAILABLE", info.value.message()
                assert "model 'slow'" in info.value.message() and "still loading" in info.value.message()
            with pytest.raises(InferenceServerException) as info:
                client.infer("nope", [triton_input(om.window())])
            assert info.value.status() == "StatusCode.NOT_FOUND"
            loading.set()
            starting.join(60)
            assert client.is_server_ready() and client.is_model_ready("slow")
            assert client.infer("slow", [triton_input(om.window())]).get_response().model_version == "1"
    finally:
        loading.set()
        starting.join(60)
        server.stop()


@pytest.mark.parametrize("in_flight", [None, 4])  # the default (32), and a set one
def test_a_fast_stream_is_held_back_by_flow_control_not_refused(start_server, linear_path, in_flight):
    limit = in_flight or 32
    settings = {"max_stream_in_flight": in_flight} if in_flight else {}
    batching = {"max_queue_size": limit + 8, "inline_below_us": 0}  # room for one stream, not for all it sends
    server = start_server([f"{NAME}={linear_path}"], batching=batching, **settings)
    registry = server.server.metrics.registry

    def started() -> float:
        return registry.get_sample_value("cityagent_serving_requests_total", {"model": NAME}) or 0

    n = 200
    requests = [_request(str(i), om.window(seed=i)) for i in range(n)]
    answers: list = []
    with grpc.insecure_channel(server.address) as channel:
        with blocked_workers(server):  # nothing finishes: only the stream's own bound stops it reading on
            # the call starts sending as soon as it is made (grpc reads the iterator on a thread of its own), so it
            # is made only once every worker is blocked: made before, request 0 once found a free thread (33 of 32)
            call = pb_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer(iter(requests), timeout=60)
            reader = threading.Thread(target=lambda: answers.extend(call))
            reader.start()
            wait_until(lambda: started() >= limit)
            time.sleep(0.3)  # ample time for an unbounded reader to pull in all of them
            assert started() == limit, [(a.infer_response.id, a.error_message) for a in answers[:3]]
        reader.join(60)
    assert [a.error_message for a in answers] == [""] * n  # none refused as 'queue full'
    assert sorted(int(a.infer_response.id) for a in answers) == list(range(n))
    for a in answers:
        y = np.frombuffer(a.infer_response.raw_output_contents[0], "<f4").reshape(a.infer_response.outputs[0].shape)
        np.testing.assert_allclose(y, om.reference(om.window(seed=int(a.infer_response.id))), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda c, x: c.infer(NAME, [x], sequence_id=7, sequence_start=True),
            "request parameters 'sequence_end', 'sequence_id', 'sequence_start' are not supported",
        ),
        (lambda c, x: c.infer(NAME, [x], priority=1), "request parameter 'priority' is not supported"),
        (lambda c, x: c.infer(NAME, [x], timeout=1000), "request parameter 'timeout' is not supported"),
        (lambda c, x: c.infer(NAME, [x], parameters={"top_k": 3}), "request parameter 'top_k' is not supported"),
        (
            lambda c, x: c.infer(NAME, [x], outputs=[tc.InferRequestedOutput("y", class_count=3)]),
            "output 'y' parameter 'classification' is not supported",
        ),
    ],
)
def test_parameters_asking_for_what_is_not_served_are_invalid_argument(client, call, message):
    with pytest.raises(InferenceServerException) as info:
        call(client, triton_input(om.window()))
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT" and message in info.value.message()
    assert "leave" in info.value.message()


def test_plain_tritonclient_calls_and_format_hints_are_accepted(client, server):
    x = om.window()
    plain = client.infer(NAME, [triton_input(x)], outputs=[tc.InferRequestedOutput("y")], request_id="p")
    np.testing.assert_allclose(plain.as_numpy("y"), om.reference(x), rtol=1e-5, atol=1e-4)
    request = _request("hints", x)  # what MLServer's and KServe's clients attach
    request.parameters["content_type"].string_param = "np"
    request.inputs[0].parameters["content_type"].string_param = "np"
    request.outputs.add(name="y").parameters["binary_data"].bool_param = True
    with grpc.insecure_channel(server.address) as channel:
        out = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    y = np.frombuffer(out.raw_output_contents[0], "<f4").reshape(out.outputs[0].shape)
    np.testing.assert_allclose(y, om.reference(x), rtol=1e-5, atol=1e-4)
