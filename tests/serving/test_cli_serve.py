"""`cityagent serve` as a real process: it serves, answers tritonclient, and shuts down cleanly on SIGTERM."""

import re
import signal
import subprocess
import sys
import time

import numpy as np
import tritonclient.grpc as tc

from tests.serving import onnx_models as om
from tests.serving.conftest import NAME, triton_input

RUN_SERVE = "import typer; from cityagent.agent.cli_serve import serve; typer.run(serve)"


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
