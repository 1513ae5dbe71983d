"""A tracking store used directly as a database (PostgreSQL, sqlite) is checked before training, like an HTTP
server: one that refuses fails within seconds with one line naming it (password masked) and what to do, instead
of MLflow's two minutes of retries ending in a traceback."""

import importlib.util
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from cityagent.errors import CityAgentError
from cityagent.store_check import masked
from cityagent.training.tracking import check_server
from tests.mlflow_servers import free_port

BIN = Path(sys.executable).parent


def test_a_refused_postgres_store_fails_fast_naming_it_with_the_password_masked():
    url = f"postgresql://mlflow:s3cret@127.0.0.1:{free_port()}/mlflow"
    t0 = time.perf_counter()
    with pytest.raises(CityAgentError) as err:
        check_server(url)
    assert time.perf_counter() - t0 < 5
    msg = str(err.value)
    assert f"MLflow tracking database {masked(url)} is not reachable" in msg and "mlflow:***@127.0.0.1" in msg
    assert "Connection refused" in msg and "s3cret" not in msg and "\n" not in msg
    assert "start the database server or create the database, fix MLFLOW_TRACKING_URI" in msg


def test_a_store_url_whose_driver_is_not_installed_says_which():
    if importlib.util.find_spec("psycopg2") is not None:
        pytest.skip("psycopg2 is installed here, so postgresql+psycopg2:// has its driver")
    url = f"postgresql+psycopg2://u:pw@127.0.0.1:{free_port()}/x"
    with pytest.raises(CityAgentError) as err:
        check_server(url)
    assert "postgresql+psycopg2 needs the Python module 'psycopg2', which is not installed" in str(err.value)
    assert "pip install it, or name an installed driver in the URL" in str(err.value) and "pw" not in str(err.value)


@pytest.mark.postgres
def test_a_reachable_postgres_database_passes_and_a_missing_one_is_named(pg_url):
    check_server(pg_url)  # the test database: reachable, so no error (and nothing is created in it)
    missing = f"cityagent_missing_{uuid.uuid4().hex[:8]}"
    url = pg_url.rsplit("/", 1)[0] + f"/{missing}"
    with pytest.raises(CityAgentError) as err:
        check_server(url)
    assert f"MLflow tracking database {url} is not reachable" in str(err.value)
    assert f'database "{missing}" does not exist' in str(err.value) and "create the database" in str(err.value)


def test_a_sqlite_store_in_a_missing_folder_is_refused_but_the_home_folder_is_made(tmp_path, monkeypatch):
    typo = tmp_path / "tema" / "mlflow.db"
    with pytest.raises(CityAgentError) as err:
        check_server(f"sqlite:///{typo}")
    assert f"its folder {typo.parent} does not exist); create the folder" in str(err.value)
    assert not typo.parent.exists()  # MLflow would have made it and started an empty store there
    monkeypatch.setenv("CITYAGENT_HOME", str(tmp_path / "fresh-home"))
    check_server(f"sqlite:///{tmp_path / 'fresh-home' / 'mlflow.db'}")  # cityagent's own home is made on first use
    check_server(f"sqlite:///{tmp_path / 'mlflow.db'}")


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder this user cannot write: a chmod-ed one, or for root (who writes anyway) read-only /proc/sys."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    if not os.access(folder, os.W_OK):
        return folder
    folder.chmod(0o700)
    if Path("/proc/sys").is_dir() and not os.access("/proc/sys", os.W_OK):
        return Path("/proc/sys")
    pytest.skip("this user (root) writes into any folder here, so there is no read-only one to refuse")


def test_a_sqlite_store_in_a_read_only_folder_is_refused(tmp_path):
    folder = _read_only_folder(tmp_path)
    try:
        with pytest.raises(CityAgentError, match=rf"its folder {folder} is not writable\); make it writable"):
            check_server(f"sqlite:///{folder / 'mlflow.db'}")
    finally:
        if folder.is_relative_to(tmp_path):
            folder.chmod(0o700)


def test_masked_hides_only_the_password():
    assert masked("postgresql+psycopg://u:p%40ss@db:5432/m") == "postgresql+psycopg://u:***@db:5432/m"
    assert masked("postgresql://u@db/m") == "postgresql://u@db/m" and masked("sqlite:///x.db") == "sqlite:///x.db"


def test_cityagent_train_against_a_refused_database_exits_2_with_one_line(tmp_path):
    from cityagent.hub.synth import synthesize

    hub = synthesize(tmp_path / "hub", sensors=6, zones=4, days=3, progress=False)
    url = f"postgresql://mlflow:s3cret@127.0.0.1:{free_port()}/mlflow"
    env = {**os.environ, "CITYAGENT_HOME": str(tmp_path / "home"), "MLFLOW_TRACKING_URI": url}
    env.pop("RAY_ADDRESS", None)
    cmd = [str(BIN / "cityagent"), "train", "traffic", "--hub", str(hub), "--workers", "0", "train.max_epochs=1"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert time.perf_counter() - t0 < 60, done.stdout  # MLflow alone retried for about two minutes
    out = " ".join(done.stdout.split())
    assert done.returncode == 2, done.stdout
    assert "MLflow tracking database postgresql://mlflow:***@127.0.0.1" in out and "Connection refused" in out
    assert "Traceback" not in out and "s3cret" not in out, done.stdout
