"""The `cityagent` entry point: an error a service returns reaches the user as one line, not a traceback."""

import os
import subprocess

from tests.mlflow_servers import BIN, mlflow_server


def test_an_mlflow_server_that_refuses_the_api_is_one_line_naming_the_fix(tmp_path):
    # a real server whose --allowed-hosts omits the client's Host: /health answers, the API says 403
    with mlflow_server(tmp_path, "--allowed-hosts", "mlflow.city.lan:*") as url:
        env = {**os.environ, "MLFLOW_TRACKING_URI": url, "CITYAGENT_HOME": str(tmp_path / "home")}
        done = subprocess.run(
            [str(BIN / "cityagent"), "models", "list"], env=env, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    message = " ".join(done.stderr.split())
    assert f"MLflow ({url}) refused the request" in message and "Invalid Host header" in message
    assert "to the server's --allowed-hosts" in message
