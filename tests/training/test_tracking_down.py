"""A tracking server that dies mid-run: bounded MLflow retries, then one error naming it and what to do."""

import socket
import time

import pytest
from mlflow import MlflowClient

from cityagent.store_check import HTTP_DEFAULTS, bound_http_retries
from cityagent.training.tracked_run import BUNDLE_ARTIFACT, TrackedRun, TrackingUnreachable


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again: nothing listens there


def test_mlflow_http_retries_are_bounded_unless_the_user_set_them(monkeypatch):
    for name in HTTP_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "300")
    bound_http_retries()
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 3 and MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get() == 1
    assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 300  # the user's value wins


@pytest.mark.parametrize("bundle_saved", [False, True])
def test_a_server_gone_mid_run_fails_within_seconds_naming_it(monkeypatch, bundle_saved):
    for name, value in HTTP_DEFAULTS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")  # the test's own bound; the defaults cost ~10 s
    url = _dead_url()
    t0 = time.perf_counter()
    with pytest.raises(TrackingUnreachable, match=rf"MLflow tracking server {url} not reachable") as err:
        with TrackedRun(MlflowClient(tracking_uri=url), "r1") as run:
            if bundle_saved:
                run.logged.add(BUNDLE_ARTIFACT)
            run.epoch({"epoch": 3, "val_loss": 0.5})
    assert time.perf_counter() - t0 < 20  # and leaving the run does not wait on the dead server again
    if bundle_saved:
        assert "finish with `cityagent export r1`" in str(err.value)
    else:
        assert "retrain" in str(err.value)
