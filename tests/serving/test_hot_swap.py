"""Hot swap under load: an alias (or file) moves while clients keep sending; no request fails, and a broken new
version, or one whose interface differs from the served one, leaves the old one serving."""

import logging
import os
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest
import tritonclient.grpc as tc
from onnx import TensorProto

from cityagent.serving.errors import ModelLoadError
from tests.serving import onnx_models as om
from tests.serving.conftest import NAME, blocked_workers, collect, triton_input, wait_until


class LoadGenerator:
    """`threads` tritonclient clients sending `per_thread` requests each, a few ms apart; records every answer."""

    def __init__(self, address: str, threads: int = 4, per_thread: int = 50, pause_s: float = 0.01) -> None:
        self.address, self.per_thread, self.pause_s = address, per_thread, pause_s
        self.answers: list[tuple[str, np.ndarray, np.ndarray]] = []  # (version, x, y)
        self.errors: list[Exception] = []
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, seed: int) -> None:
        with tc.InferenceServerClient(self.address) as client:
            for i in range(self.per_thread):
                x = om.window(1 + i % 2, seed=seed * 1000 + i)
                try:
                    result = client.infer(NAME, [triton_input(x)])
                    self.answers.append((result.get_response().model_version, x, result.as_numpy("y")))
                except Exception as e:  # any failure is what the test counts
                    self.errors.append(e)
                time.sleep(self.pause_s)

    @contextmanager
    def running(self):
        for t in self._threads:
            t.start()
        try:
            yield self
        finally:
            for t in self._threads:
                t.join(60)

    def wait_for(self, n: int, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.answers) + len(self.errors) < n and time.monotonic() < deadline:
            time.sleep(0.01)


def check_answers(load: LoadGenerator, scales: dict[str, float]) -> None:
    """Zero failures, and every answer is exactly what the version that answered computes."""
    assert load.errors == []
    assert len(load.answers) == 200
    for version, x, y in load.answers:
        np.testing.assert_allclose(y, om.reference(x, scales[version]), rtol=1e-5, atol=1e-3)


def replace(path, model) -> None:
    tmp = path.with_suffix(".tmp")
    om.save(model, tmp) if not isinstance(model, bytes) else tmp.write_bytes(model)
    os.replace(tmp, path)  # atomic, as a deploy script would do it


def test_local_file_hot_swap_under_load(start_server, tmp_path, caplog):
    path = om.save(om.linear_model(1.0), tmp_path / "model.onnx")
    server = start_server([f"{NAME}={path}"], registry={"poll_interval_s": 0.05})
    store = server.server.store
    with (
        caplog.at_level(logging.ERROR, logger="cityagent.serving.store"),
        LoadGenerator(server.address).running() as load,
    ):
        load.wait_for(40)
        replace(path, om.linear_model(2.0))
        wait_until(lambda: store.versions(NAME) == ["2"])
        load.wait_for(80)
        replace(path, b"this is not an onnx file")  # version 3: cannot load
        wait_until(lambda: "version 3" in caplog.text)
        replace(path, om.failing_model())  # version 4: loads, fails the smoke inference
        wait_until(lambda: "version 4" in caplog.text)
    check_answers(load, {"1": 1.0, "2": 2.0})
    assert {v for v, _, _ in load.answers} == {"1", "2"}
    assert store.versions(NAME) == ["2"]
    assert "is not a loadable ONNX model" in caplog.text and "fails a smoke inference" in caplog.text
    assert "version 2 keeps serving" in caplog.text
    registry = server.server.metrics.registry
    assert registry.get_sample_value("cityagent_serving_swaps_total", {"model": NAME, "outcome": "failed"}) == 2
    assert registry.get_sample_value("cityagent_serving_loaded_version", {"model": NAME, "version": "2"}) == 1
    assert registry.get_sample_value("cityagent_serving_loaded_version", {"model": NAME, "version": "1"}) is None


def test_registry_alias_move_hot_swaps_under_load_and_a_failing_version_is_refused(
    start_server, mlflow_registry, caplog
):
    registry = {"poll_interval_s": 0.2, "tracking_uri": mlflow_registry.uri}
    with pytest.raises(ModelLoadError, match="models:/traffic-test@champion does not resolve in the registry"):
        start_server([f"{NAME}@champion"], registry=registry)  # no version has the alias yet
    assert mlflow_registry(om.linear_model(1.0), "champion") == "1"
    server = start_server([f"{NAME}@champion"], registry=registry)
    store = server.server.store
    with tc.InferenceServerClient(server.address) as client:
        assert list(client.get_model_metadata(NAME).versions) == ["1"]
    with (
        caplog.at_level(logging.ERROR, logger="cityagent.serving.store"),
        LoadGenerator(server.address).running() as load,
    ):
        load.wait_for(20)
        assert mlflow_registry(om.linear_model(2.0), "champion") == "2"
        wait_until(lambda: store.versions(NAME) == ["2"])
        assert mlflow_registry(om.failing_model(), "champion") == "3"
        wait_until(lambda: "version 3 of models:/traffic-test@champion not loaded" in caplog.text)
    check_answers(load, {"1": 1.0, "2": 2.0})
    assert {v for v, _, _ in load.answers} == {"1", "2"}
    assert store.versions(NAME) == ["2"] and "fails a smoke inference" in caplog.text


def test_requests_queued_before_a_swap_finish_on_the_old_version(start_server, tmp_path):
    path = om.save(om.linear_model(1.0), tmp_path / "model.onnx")
    server = start_server([f"{NAME}={path}"])
    registry = server.server.metrics.registry
    answers: list = []
    with tc.InferenceServerClient(server.address) as client:
        with blocked_workers(server):
            for i in range(6):
                client.async_infer(NAME, [triton_input(om.window(seed=i))], callback=collect(answers))
            wait_until(lambda: registry.get_sample_value("cityagent_serving_requests_total", {"model": NAME}) == 6)
            replace(path, om.linear_model(2.0))
            server.call(server.server.store.poll_once())  # the swap, while all six wait on version 1
            assert answers == [] and server.server.store.versions(NAME) == ["2"]
        wait_until(lambda: len(answers) == 6)
        after = client.infer(NAME, [triton_input(om.window())]).get_response().model_version
    assert [e for _, e in answers] == [None] * 6
    assert [r.get_response().model_version for r, _ in answers] == ["1"] * 6 and after == "2"


INCOMPATIBLE = {
    "node ids": (lambda: om.linear_model(2.0, nodes=["s0", "s1", "s9"]), "metadata 'nodes'"),
    "feature names": (lambda: om.linear_model(2.0, feature_names=["speed", "occupancy"]), "metadata 'feature_names'"),
    "more nodes": (lambda: om.sliced_model(n=4, nodes=["s0", "s1", "s2", "s3"]), "input 'x' shape [-1, 4, 3, 2]"),
    "input dtype": (lambda: om.sliced_model(elem=TensorProto.DOUBLE), "input 'x' datatype FP32 -> FP64"),
    "output shape": (lambda: om.sliced_model(h=3, horizon=3), "output 'y' shape [-1, 2, 3] -> [-1, 3, 3]"),
    "target offsets": (
        lambda: om.linear_model(2.0, target_offsets=[2, 4]),
        "metadata 'target_offsets' [1, 2] -> [2, 4]",
    ),
    "horizon behind symbolic output axes": (  # as older GRU and risk exports left them: the sizes only in metadata
        lambda: om.sliced_model(h=3, symbolic=True, horizon=3, target_offsets=[1, 2, 3]),
        "output 'y' shape [-1, 2, 3] -> [-1, 3, 3]",
    ),
}


@pytest.mark.parametrize("change", INCOMPATIBLE)
def test_a_version_that_changes_the_interface_is_refused_and_the_old_one_keeps_serving(
    start_server, tmp_path, caplog, change
):
    build, expected = INCOMPATIBLE[change]
    path = om.save(om.linear_model(1.0), tmp_path / "model.onnx")
    server = start_server([f"{NAME}={path}"])
    store = server.server.store
    replace(path, build())
    with caplog.at_level(logging.ERROR, logger="cityagent.serving.store"):
        server.call(store.poll_once())
    assert store.versions(NAME) == ["1"]
    assert "version 2 of traffic-test=" in caplog.text and "version 1 keeps serving" in caplog.text
    assert "changes what clients of version 1 send or receive" in caplog.text and expected in caplog.text
    with tc.InferenceServerClient(server.address) as client:
        result = client.infer(NAME, [triton_input(om.window())])
    assert result.get_response().model_version == "1"
    np.testing.assert_allclose(result.as_numpy("y"), om.reference(om.window()), rtol=1e-5, atol=1e-4)
    registry = server.server.metrics.registry
    assert registry.get_sample_value("cityagent_serving_swaps_total", {"model": NAME, "outcome": "failed"}) == 1
    replace(path, om.linear_model(3.0))  # a compatible version after it swaps in as usual
    server.call(store.poll_once())
    assert store.versions(NAME) == ["3"]
    fresh = start_server([f"{NAME}={om.save(build(), tmp_path / 'fresh.onnx')}"])  # a first load compares nothing
    assert fresh.server.store.versions(NAME) == ["1"]


def test_a_horizon_change_is_refused_when_both_versions_leave_their_output_axes_symbolic(
    start_server, tmp_path, caplog
):
    """The reviewer's case: risk v1 (horizon 1) served, v2 (horizon 3) promoted; both ONNX files name the output
    axes instead of sizing them, so only the metadata tells the shapes apart."""
    path = om.save(om.linear_model(1.0, symbolic=True), tmp_path / "model.onnx")
    server = start_server([f"{NAME}={path}"])
    store = server.server.store
    replace(path, om.sliced_model(h=3, symbolic=True, horizon=3, target_offsets=[1, 2, 3]))
    with caplog.at_level(logging.ERROR, logger="cityagent.serving.store"):
        server.call(store.poll_once())
    assert store.versions(NAME) == ["1"]
    assert "output 'y' shape [-1, 2, 3] -> [-1, 3, 3]" in caplog.text and "metadata 'horizon' 2 -> 3" in caplog.text
    assert "metadata 'output_shape' [-1, 2, 3] -> [-1, 3, 3]" in caplog.text
    with tc.InferenceServerClient(server.address) as client:
        assert client.infer(NAME, [triton_input(om.window())]).as_numpy("y").shape == (1, om.H, om.N)


def test_the_loaded_version_gauge_keeps_a_version_another_alias_still_serves(start_server, mlflow_registry):
    from mlflow import MlflowClient

    assert mlflow_registry(om.linear_model(1.0), "champion") == "1"
    assert mlflow_registry(om.linear_model(2.0), "challenger") == "2"
    registry = {"poll_interval_s": 0, "tracking_uri": mlflow_registry.uri}
    server = start_server([f"{NAME}@champion", f"{NAME}@challenger"], registry=registry)
    store, client = server.server.store, MlflowClient(tracking_uri=mlflow_registry.uri)

    def loaded() -> list[str]:
        values = {v: server.server.metrics.registry.get_sample_value(
            "cityagent_serving_loaded_version", {"model": NAME, "version": v}) for v in ("1", "2")}  # fmt: skip
        return sorted(v for v, on in values.items() if on == 1)

    assert loaded() == ["1", "2"]
    client.set_registered_model_alias(NAME, "champion", "2")  # promote the challenger: nobody serves 1 any more
    server.call(store.poll_once())
    assert loaded() == ["2"]
    client.set_registered_model_alias(NAME, "champion", "1")  # roll back: 2 is still the challenger
    server.call(store.poll_once())
    assert loaded() == ["1", "2"] and store.versions(NAME) == ["1", "2"]


def test_the_champion_answers_by_default_and_an_alias_can_be_named(start_server, mlflow_registry):
    """With champion and challenger of one name in one server, a request without a version got whichever was
    listed first (here the challenger); it now gets the champion, and a client may name an alias."""
    from cityagent.serving.errors import ModelNotFound

    assert mlflow_registry(om.linear_model(1.0), "champion") == "1"
    assert mlflow_registry(om.linear_model(2.0), "challenger") == "2"
    registry = {"poll_interval_s": 0, "tracking_uri": mlflow_registry.uri}
    server = start_server([f"{NAME}@challenger", f"{NAME}@champion"], registry=registry)
    store = server.server.store
    assert store.get(NAME).version == "1" and store.get(NAME, "champion").version == "1"
    assert store.get(NAME, "challenger").version == "2" and store.get(NAME, "2").version == "2"
    with pytest.raises(ModelNotFound, match=r"ask for a served version \(2, 1\) or an alias \(challenger, champion\)"):
        store.get(NAME, "shadow")
    with tc.InferenceServerClient(server.address) as client:
        assert client.infer(NAME, [triton_input(om.window())]).get_response().model_version == "1"
        answer = client.infer(NAME, [triton_input(om.window())], model_version="challenger").get_response()
        assert answer.model_version == "2"


def test_an_alias_move_to_an_incompatible_version_is_refused(start_server, mlflow_registry, caplog):
    registry = {"poll_interval_s": 0, "tracking_uri": mlflow_registry.uri}
    mlflow_registry(om.linear_model(1.0), "champion")
    server = start_server([f"{NAME}@champion"], registry=registry)
    store = server.server.store
    assert mlflow_registry(om.linear_model(2.0, nodes=["s0", "s1", "s9"]), "champion") == "2"
    with caplog.at_level(logging.ERROR, logger="cityagent.serving.store"):
        server.call(store.poll_once())
    assert store.versions(NAME) == ["1"]
    assert "version 2 of models:/traffic-test@champion not loaded, version 1 keeps serving" in caplog.text
    assert 'metadata \'nodes\' ["s0", "s1", "s2"] -> ["s0", "s1", "s9"]' in caplog.text
    with tc.InferenceServerClient(server.address) as client:
        assert client.infer(NAME, [triton_input(om.window())]).get_response().model_version == "1"


def test_a_registry_poll_during_an_outage_returns_at_once_and_keeps_the_served_version():
    """MlflowClient retries a refused connection for minutes: a poll then held up the alias pickup after the outage."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cityagent.serving.sources import RegistrySource
    from cityagent.serving.spec import ModelSpec

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    registry = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=registry.serve_forever, daemon=True).start()
    source = RegistrySource(f"http://127.0.0.1:{registry.server_address[1]}")  # up when the server starts
    registry.shutdown()
    registry.server_close()  # ... and down at the next poll
    t0 = time.monotonic()
    with pytest.raises(ModelLoadError, match=r"models:/m@champion: the registry .* is not reachable .*served version"):
        source.current(ModelSpec("registry", "m", "champion", by_alias=True))
    assert time.monotonic() - t0 < 10


def test_a_poll_against_a_server_whose_database_is_out_is_bounded(monkeypatch):
    """/health answers but every API call is a 503 (the server's database is down): MLflow's default retries held
    a poll for minutes, so a promotion made meanwhile reached the server minutes late."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cityagent.serving.sources import RegistrySource
    from cityagent.serving.spec import ModelSpec
    from cityagent.store_check import HTTP_DEFAULTS

    for name in HTTP_DEFAULTS:
        monkeypatch.delenv(name, raising=False)

    class DatabaseDown(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), DatabaseDown)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = RegistrySource(f"http://127.0.0.1:{server.server_address[1]}")
        t0 = time.monotonic()
        with pytest.raises(ModelLoadError, match=r"models:/m@champion does not resolve in the registry"):
            source.current(ModelSpec("registry", "m", "champion", by_alias=True))
        assert time.monotonic() - t0 < 30  # 3 retries with backoff 1, not 7 with backoff 2
    finally:
        server.shutdown()
        server.server_close()


def test_every_registry_outage_is_logged_once_and_its_end_too(start_server, tmp_path, caplog):
    """The first outage was logged and every later one went unsaid: the error was only cleared by a new version."""
    path = om.save(om.linear_model(1.0), tmp_path / "model.onnx")
    server = start_server([f"{NAME}={path}"])
    store = server.server.store
    [slot] = store._slots
    real = slot.source.current
    outage = {"on": False}

    def current(spec):
        if outage["on"]:
            raise ConnectionError("registry unreachable")
        return real(spec)

    slot.source.current = current
    with caplog.at_level(logging.INFO, logger="cityagent.serving.store"):
        for on in (True, True, False, True, False):
            outage["on"] = on
            server.call(store.poll_once())
    assert caplog.text.count("cannot resolve") == 2  # two outages, each said once
    assert caplog.text.count("resolves again") == 2
    assert store.versions(NAME) == ["1"]


def _stored_onnx(client, version: str):
    """The model.onnx a version's artifacts hold in the test registry's local artifact folder."""
    from pathlib import Path

    [path] = Path(client.get_model_version_download_uri(NAME, version).removeprefix("file://")).rglob("*.onnx")
    return path


def test_a_version_whose_stored_file_differs_from_its_export_digest_is_not_served(
    start_server, mlflow_registry, caplog
):
    """A model.onnx corrupted or replaced in the artifact store still loads and passes the smoke test on zeros, so
    only its SHA-256 (the version's cityagent.onnx_sha256 tag, set at export) tells; untagged versions are served."""
    from mlflow import MlflowClient

    from cityagent.onnx_digest import DIGEST_TAG, file_sha256

    client = MlflowClient(tracking_uri=mlflow_registry.uri)
    assert mlflow_registry(om.linear_model(1.0), "champion") == "1"
    assert mlflow_registry(om.linear_model(2.0), "challenger") == "2"
    stored = _stored_onnx(client, "2")
    client.set_model_version_tag(NAME, "2", DIGEST_TAG, file_sha256(stored))  # as `cityagent export` records it
    om.save(om.linear_model(3.0), stored)  # replaced in the artifact store: same interface, other answers
    registry = {"poll_interval_s": 0, "tracking_uri": mlflow_registry.uri}
    server = start_server([f"{NAME}@champion"], registry=registry)
    store = server.server.store

    client.set_registered_model_alias(NAME, "champion", "2")
    with caplog.at_level(logging.ERROR, logger="cityagent.serving.store"):
        server.call(store.poll_once())
    assert store.versions(NAME) == ["1"]
    run_id = client.get_model_version(NAME, "2").run_id
    assert "version 2 of models:/traffic-test@champion not loaded, version 1 keeps serving" in caplog.text
    assert f"{NAME} v2: model.onnx does not match the SHA-256 recorded at export" in caplog.text
    assert f"re-register it: cityagent export {run_id}" in caplog.text
    with tc.InferenceServerClient(server.address) as grpc_client:
        y = grpc_client.infer(NAME, [triton_input(om.window())]).as_numpy("y")
    np.testing.assert_allclose(y, om.reference(om.window(), 1.0), rtol=1e-5, atol=1e-3)
    with pytest.raises(ModelLoadError, match="does not match the SHA-256 recorded at export"):
        start_server([f"{NAME}@champion"], registry=registry)  # nor is a server started on it

    assert mlflow_registry(om.linear_model(2.0), "champion") == "3"  # no digest tag (registered by hand): served
    server.call(store.poll_once())
    assert store.versions(NAME) == ["3"]
