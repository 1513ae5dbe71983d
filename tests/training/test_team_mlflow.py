"""Team mode: a real `mlflow server` on PostgreSQL with proxied artifacts; export → register → promote →
rollback → history all over HTTP, and the history is stored in the server's database."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from cityagent.training.export import export_run
from cityagent.training.onnx_meta import read_metadata
from cityagent.training.registry import history, list_versions, promote, rollback
from tests.mlflow_servers import free_port
from tests.training.export_factories import log_training_run, tiny_bundle

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
PG_ADMIN = os.environ.get("CITYAGENT_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"mlflow server did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def team_server(tmp_path_factory):
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        pytest.skip(f"no PostgreSQL server at {PG_ADMIN} ({e})")
    db = f"cityagent_mlflow_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{db}"')
    root = tmp_path_factory.mktemp("team")
    port, log = free_port(), root / "server.log"
    backend = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{db}"
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        str(root / "artifacts"),
        "--workers",
        "1",
    ]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url, root, backend
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its worker processes, nothing else
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.close()


def test_register_promote_rollback_history_over_http(team_server, monkeypatch):
    url, root, backend = team_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)  # what a team sets; no code change
    client = MlflowClient(url)
    exp = client.create_experiment("team")  # artifacts go through the server's proxy (mlflow-artifacts:/)
    runs = [
        log_training_run(
            client, exp, tiny_bundle("gru", task="traffic-team", seed=s), root / "runs", metrics={"test_mae": mae}
        )
        for s, mae in ((0, 3.0), (1, 2.5))
    ]
    results = [export_run(r, actor="ci") for r in runs]
    assert [r.version for r in results] == ["1", "2"]

    promote("traffic-team", "1", reason="first champion", actor="alice")
    promote("traffic-team", "2", reason="2.5 < 3.0", actor="bob")
    assert rollback("traffic-team", reason="night-time drift", actor="carol").to_version == "1"

    moves = history("traffic-team", tracking_uri=url)
    assert [(m.action, m.alias, m.from_version, m.to_version) for m in moves] == [
        ("export", "challenger", None, "1"),
        ("export", "challenger", "1", "2"),
        ("promote", "champion", None, "1"),
        ("promote", "champion", "1", "2"),
        ("rollback", "champion", "2", "1"),
    ]
    rows = {r.version: r for r in list_versions("traffic-team")}
    assert rows["1"].aliases == ["champion"] and rows["2"].aliases == ["challenger"]
    assert rows["1"].metrics["test_mae"] == 3.0

    served = Path(mlflow.artifacts.download_artifacts("models:/traffic-team@champion", dst_path=str(root / "dl")))
    assert read_metadata(served / "model.onnx")["run_id"] == runs[0]
    assert any((root / "artifacts").rglob("model.onnx"))  # stored at the server's artifact destination

    import psycopg

    with psycopg.connect(backend.replace("postgresql+psycopg://", "postgresql://")) as conn:
        n = conn.execute("SELECT count(*) FROM registered_model_tags WHERE key LIKE 'cityagent.history.%'").fetchone()
    assert n[0] == len(moves)  # the history lives in the team's database
