"""The drift reference of a served run: a tracking server that is down is named at once, not retried for minutes."""

import socket
import time

import pytest

from cityagent.agent import drift_watch
from cityagent.agent.drift import reference_from, save_reference
from cityagent.agent.drift_watch import TrackingUnreachable, reference_for, reference_path


@pytest.fixture
def down_uri(monkeypatch) -> str:
    """MLFLOW_TRACKING_URI pointing at a port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def test_a_server_that_is_down_is_named_within_seconds(down_uri):
    t0 = time.monotonic()
    with pytest.raises(TrackingUnreachable, match=rf"tracking server {down_uri} is not reachable \(") as e:
        reference_for("run-x")
    assert time.monotonic() - t0 < 10 and e.value.uri == down_uri


def test_a_local_reference_needs_no_server(down_uri, monkeypatch):
    import numpy as np

    save_reference(reference_from({"speed": np.ones((10, 2))}, nodes=["a", "b"]), reference_path("run-x"))
    monkeypatch.setattr(drift_watch, "unreachable", lambda uri: pytest.fail("asked the server"))
    assert "speed" in reference_for("run-x")["channels"]


def test_a_local_store_is_not_health_checked(tmp_path, monkeypatch):
    """A sqlite store without the run: no reference (None), as before."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert reference_for("no-such-run") is None


def test_a_server_that_answers_health_but_refuses_the_api_is_an_error_not_a_missing_reference(tmp_path, monkeypatch):
    """A 403 (or 5xx) is said, and the model is checked again next cycle; only a missing run or artifact is None."""
    from cityagent.errors import CityAgentError
    from tests.mlflow_servers import mlflow_server

    with mlflow_server(tmp_path, "--allowed-hosts", "mlflow.city.lan:*") as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        failed = rf"tracking server {url} failed to give run run-x's drift reference: "
        with pytest.raises(CityAgentError, match=failed):
            reference_for("run-x")
    assert not reference_path("run-x").exists()


def test_a_run_without_a_reference_artifact_has_none(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("x"))
    assert reference_for(run.info.run_id) is None
