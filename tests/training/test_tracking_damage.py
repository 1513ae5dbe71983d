"""A damaged local store (``$CITYAGENT_HOME/mlflow.db``) is one line naming the file and saying to restore it, not
SQLAlchemy's 100-line traceback; a missing or empty one beside an artifacts folder that holds models is refused,
where MLflow would silently start an empty registry; a brand-new home still just works."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from cityagent.errors import CityAgentError
from cityagent.training.tracking import check_server

BIN = Path(sys.executable).parent


def registry_home(home: Path) -> Path:
    """A home whose store holds one registered model with a logged model's files under ``artifacts/``."""
    home.mkdir(parents=True)
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    client.create_experiment("traffic", artifact_location=str(home / "artifacts" / "traffic"))
    client.create_registered_model("traffic-synthetic")
    logged = home / "artifacts" / "traffic" / "models" / "m-0123" / "artifacts"  # as mlflow.onnx.log_model leaves it
    logged.mkdir(parents=True)
    (logged / "MLmodel").write_text("flavors: {onnx: {data: model.onnx}}\n")
    return home / "mlflow.db"


def cityagent(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CITYAGENT_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [str(BIN / "cityagent"), *args]
    return subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)


def test_a_truncated_store_is_refused_in_one_line_naming_the_file(tmp_path):
    db = registry_home(tmp_path / "home")
    os.truncate(db, db.stat().st_size // 2)
    with pytest.raises(CityAgentError) as err:
        check_server(f"sqlite:///{db}")
    msg = str(err.value)
    assert f"{db} is damaged: database disk image is malformed); restore mlflow.db from a backup" in msg, msg
    db.write_bytes(b"not a database, but text" * 10)
    with pytest.raises(CityAgentError, match="is damaged: file is not a database"):
        check_server(f"sqlite:///{db}")


@pytest.mark.parametrize("state", ["empty", "missing"])
def test_an_empty_or_missing_store_beside_logged_models_is_refused_not_started_fresh(tmp_path, state):
    db = registry_home(tmp_path / "home")
    db.write_bytes(b"") if state == "empty" else db.unlink()
    with pytest.raises(CityAgentError) as err:
        check_server(f"sqlite:///{db}")
    msg = str(err.value)
    said = "is empty (0 bytes)" if state == "empty" else "is missing"
    assert f"{db} {said} but {db.parent / 'artifacts'} holds models logged to it" in msg, msg
    assert "restore mlflow.db from a backup, or move" in msg and "aside to start an empty registry on purpose" in msg
    assert not db.exists() or db.stat().st_size == 0  # nothing was created in its place
    (db.parent / "artifacts").rename(db.parent / "artifacts.old")  # starting fresh on purpose
    check_server(f"sqlite:///{db}")


def test_a_brand_new_home_and_an_empty_artifacts_folder_just_work(tmp_path):
    check_server(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (tmp_path / "artifacts" / "traffic").mkdir(parents=True)  # folders, but no logged model
    check_server(f"sqlite:///{tmp_path / 'mlflow.db'}")
    done = cityagent(tmp_path / "fresh-home", "models", "list")
    assert done.returncode == 0 and "no registered models yet" in done.stdout, done.stdout


def test_the_cli_says_one_line_for_a_store_damaged_where_only_mlflow_reads(tmp_path):
    """The check before use reads the header and schema; a damaged table is found by MLflow, mid-command."""
    home = tmp_path / "home"
    db = registry_home(home)
    with sqlite3.connect(db) as con:
        page = con.execute("PRAGMA page_size").fetchone()[0]
        root = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'registered_models'").fetchone()[0]
    data = bytearray(db.read_bytes())
    data[(root - 1) * page : root * page] = b"\x0d" + b"\xff" * (page - 1)  # a leaf page header that lies
    db.write_bytes(bytes(data))
    for args in (["models", "list"], ["models", "history", "traffic-synthetic"]):
        done = cityagent(home, *args)
        assert done.returncode == 2, done.stdout
        assert done.stdout.strip().count("\n") == 0 and "Traceback" not in done.stdout, done.stdout
        assert f"MLflow store {db} is damaged (database disk image is malformed); restore it from a backup" in " ".join(
            done.stdout.split()
        ), done.stdout
