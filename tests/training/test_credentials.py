"""Passwords in URLs never reach the screen or the team's tracking server: errors show them as ***, a run logs its
tracking URI and SQL hub URL masked, and evaluating such a run asks for the hub instead of failing to log in."""

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from cityagent.errors import CityAgentError
from cityagent.store_check import redacted
from cityagent.training.evaluate import run_hub
from cityagent.training.fit import fit
from cityagent.training.run_start import run_tags, shareable
from cityagent.training.tracking import tracking_uri
from tests.mlflow_servers import free_port

BIN = Path(sys.executable).parent


def test_every_url_password_in_a_message_is_masked():
    text = "MLflow (postgresql+psycopg://team:s3cret@db:5432/mlflow) and http://bob:pw@host:5000/x, http://host:80/a"
    assert (
        redacted(text)
        == "MLflow (postgresql+psycopg://team:***@db:5432/mlflow) and http://bob:***@host:5000/x, http://host:80/a"
    )


def test_a_run_logs_its_urls_without_their_passwords(tiny_cfg):
    result = fit(tiny_cfg(**{"model.name": "ha", "model.params": {}}))
    cfg = tiny_cfg(**{"tracking.tracking_uri": "http://team:s3cret@mlflow.city.lan:5000"})
    cfg = cfg.model_copy(update={"task": cfg.task.model_copy(update={"hub": "postgresql://city:pw@db/hub"})})
    shared = shareable(cfg)
    assert shared.tracking.tracking_uri == "http://team:***@mlflow.city.lan:5000"
    assert shared.task.hub == "postgresql://city:***@db/hub" and cfg.task.hub.endswith(":pw@db/hub")  # a copy
    logged = mlflow.MlflowClient(tracking_uri()).get_run(result.run_id).data
    assert logged.tags.get("mlflow.user")  # who made it, on a shared server
    with pytest.raises(CityAgentError, match=r"whose password is not kept with the run; pass the URL with --hub"):
        run_hub("abc", shared)
    assert "mlflow.user" in run_tags(cfg, type("Fp", (), {"sha256": "x"})(), "deep")


def test_evaluate_names_a_recorded_hub_that_is_not_on_this_machine(tiny_cfg, tmp_path):
    cfg = tiny_cfg()
    gone = cfg.model_copy(update={"task": cfg.task.model_copy(update={"hub": str(tmp_path / "elsewhere")})})
    with pytest.raises(CityAgentError, match=r"read the hub at .*elsewhere, which is not on this machine; .*--hub DIR"):
        run_hub("abc", gone)


def test_the_cli_masks_a_tracking_password_in_its_error_line(tmp_path):
    port = free_port()  # nobody listens: the store check fails, naming the URI
    env = {**os.environ, "CITYAGENT_HOME": str(tmp_path), "MLFLOW_TRACKING_URI": f"http://u:s3cret@127.0.0.1:{port}"}
    done = subprocess.run([str(BIN / "cityagent"), "models", "list"], env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "s3cret" not in done.stdout + done.stderr, done.stderr
    assert f"http://u:***@127.0.0.1:{port}" in done.stdout + done.stderr
