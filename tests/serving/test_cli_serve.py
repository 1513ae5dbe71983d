"""`cityagent serve` as a real process: it serves, answers tritonclient, and shuts down cleanly on SIGTERM."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import tritonclient.grpc as tc

from tests.serving import onnx_models as om
from tests.serving.conftest import NAME, triton_input

RUN_SERVE = "import typer; from cityagent.agent.cli_serve import serve; typer.run(serve)"
RUN_CLI = "from cityagent.agent.cli import main; main()"  # the console entry point: user errors as one line


def cli_serve(args: list[str], tmp_path, **env) -> tuple[subprocess.CompletedProcess, float]:
    """`cityagent serve ARGS` in tmp_path (its own home, wide lines); the finished process and its wall time, s."""
    env = {**os.environ, "CITYAGENT_HOME": str(tmp_path / "home"), "COLUMNS": "500", **env}
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", RUN_CLI, "serve", *args], capture_output=True, text=True, cwd=tmp_path, env=env,
        timeout=120,
    )  # fmt: skip
    return proc, time.monotonic() - start


def test_serve_command_serves_and_stops_gracefully_on_sigterm(linear_path, tmp_path):
    args = ["--model", f"{NAME}={linear_path}", "--port", "0", "--no-metrics", "--poll-interval", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_SERVE, *args], stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )  # cwd without configs/: the defaults apply
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, f"serve exited early with {proc.poll()}"
            if match := re.search(r"serving \['traffic-test'\] on 127\.0\.0\.1:(\d+)", line):
                port = int(match.group(1))
        with tc.InferenceServerClient(f"127.0.0.1:{port}") as client:
            assert client.is_server_ready()
            y = client.infer(NAME, [triton_input(om.window())]).as_numpy("y")
            np.testing.assert_allclose(y, om.reference(om.window()), rtol=1e-5, atol=1e-4)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert "shutting down" in proc.stderr.read()
    finally:
        proc.kill()


def test_serve_without_models_is_one_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", RUN_SERVE, "--port", "0"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert proc.returncode != 0
    assert "no models to serve" in proc.stderr


def test_serve_fails_fast_naming_an_mlflow_server_that_is_down(tmp_path):
    with socket.socket() as s:  # a port nothing listens on once this closes
        s.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{s.getsockname()[1]}"
    args = ["-m", f"{NAME}@champion", "--port", "0", "--no-metrics"]
    proc, took_s = cli_serve(args, tmp_path, MLFLOW_TRACKING_URI=uri)
    assert proc.returncode == 2 and took_s < 30  # MlflowClient alone retries for minutes
    assert f"error: MLflow tracking server {uri} is not reachable" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_serve_on_a_taken_metrics_port_is_one_clear_error(linear_path, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["-m", f"{NAME}={linear_path}", "--port", "0", "--metrics-port", str(port), "--poll-interval", "0"]
        proc, _ = cli_serve(args, tmp_path)
    assert proc.returncode == 2
    assert (
        f"error: cannot serve metrics on 127.0.0.1:{port}" in proc.stderr
        and "pick another --metrics-port" in proc.stderr
    )
    assert "Traceback" not in proc.stderr


def test_serve_refuses_an_unknown_log_level_listing_the_valid_ones(linear_path, tmp_path):
    proc, _ = cli_serve(["-m", f"{NAME}={linear_path}", "--port", "0", "--log-level", "loud"], tmp_path)
    assert proc.returncode == 2
    assert "'loud' is not a log level; use one of debug, info, warning, error, critical." in proc.stderr
    assert "Traceback" not in proc.stderr
