"""The `cityagent` entry point: an error a service returns reaches the user as one line, not a traceback."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_mlflow_server_that_refuses_the_api_is_one_line_naming_the_fix(tmp_path):
    # a real server whose --allowed-hosts omits the client's Host: /health answers, the API says 403
    port = _free_port()
    cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--backend-store-uri", f"sqlite:///{tmp_path / 'm.db'}", "--allowed-hosts", "mlflow.city.lan:*"]
    with open(tmp_path / "server.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.5)
        env = {**os.environ, "MLFLOW_TRACKING_URI": url, "CITYAGENT_HOME": str(tmp_path / "home")}
        done = subprocess.run(
            [str(BIN / "cityagent"), "models", "list"], env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    message = " ".join(done.stderr.split())
    assert f"MLflow ({url}) refused the request" in message and "Invalid Host header" in message
    assert "to the server's --allowed-hosts" in message
