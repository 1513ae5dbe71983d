"""Fixtures for the serving tests: tiny ONNX models and real servers on 127.0.0.1 with free ports."""

import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest
import tritonclient.grpc as tc

from cityagent.serving.background import ServerThread
from cityagent.serving.config import ServingConfig
from tests.serving import onnx_models as om

NAME = "traffic-test"


@pytest.fixture
def linear_path(tmp_path):
    return om.save(om.linear_model(), tmp_path / f"{NAME}.onnx")


@pytest.fixture
def start_server():
    """start_server(models, **overrides) -> a started ServerThread (port 0, no metrics, no polling by default)."""
    started: list[ServerThread] = []

    def start(models: list[str], **overrides) -> ServerThread:
        base = {"port": 0, "metrics_port": None, "models": models, "registry": {"poll_interval_s": 0}}
        for key, value in overrides.items():
            base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
        server = ServerThread(ServingConfig.model_validate(base)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def triton_input(x: np.ndarray, name: str = "x", datatype: str = "FP32") -> tc.InferInput:
    tensor = tc.InferInput(name, list(x.shape), datatype)
    tensor.set_data_from_numpy(x)
    return tensor


@pytest.fixture
def mlflow_registry(tmp_path, monkeypatch):
    """A sqlite MLflow registry in tmp_path; register(model, alias) logs an ONNX model and registers a version."""
    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # nothing may fall back to ./mlruns
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("serving-tests", artifact_location=str(tmp_path / "artifacts"))
    client.create_registered_model(NAME)

    def register(model, alias: str) -> str:
        run = client.create_run(experiment)
        # A logged model of its own in our experiment, so the artifacts stay in tmp_path (not ./mlruns).
        logged = client.create_logged_model(experiment, name="onnx", source_run_id=run.info.run_id)
        info = mlflow.onnx.log_model(
            model, name="onnx", model_id=logged.model_id, run_id=run.info.run_id,
            onnx_execution_providers=["CPUExecutionProvider"], pip_requirements=["onnxruntime"],
        )  # fmt: skip
        client.set_terminated(run.info.run_id)
        version = client.create_model_version(
            NAME, source=info.model_uri, run_id=run.info.run_id, model_id=info.model_id
        )
        client.set_registered_model_alias(NAME, alias, version.version)
        return str(version.version)

    register.uri = uri
    return register


def wait_until(condition, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def collect(sink: list):
    """A tritonclient callback (it passes result= and error= by keyword) that appends (result, error) to sink."""
    return lambda result, error: sink.append((result, error))


@contextmanager
def blocked_workers(server):
    """Occupy every ORT worker thread until the block ends, so requests stay queued (no timing games). Returns
    once every thread holds its block: a request sent before that could still find a free thread."""
    gate, holding = threading.Event(), threading.Semaphore(0)

    def hold() -> None:
        holding.release()
        gate.wait()

    for _ in range(server.cfg.workers):
        server.server.executor.submit(hold)
    for _ in range(server.cfg.workers):
        if not holding.acquire(timeout=30):
            gate.set()
            raise TimeoutError("the server's ORT threads did not all take their block within 30 s")
    try:
        yield
    finally:
        gate.set()
