"""Shared fixtures: real services when they are there, a clear skip when they are not."""

import os
import socket
import uuid
from pathlib import Path

import pytest

SHARED_DATA = Path(
    os.environ.get("CITYAGENT_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
)
PG_URL = os.environ.get("CITYAGENT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own CITYAGENT_HOME, so state never leaks between tests."""
    monkeypatch.setenv("CITYAGENT_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the public datasets are not at {SHARED_DATA.resolve()} (set CITYAGENT_SHARED_DATA)")
    return SHARED_DATA.resolve()


@pytest.fixture
def pg_url() -> str:
    """The PostgreSQL test database; skip with the reason when no server listens."""
    if not _port_open("127.0.0.1", 5432):
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432 on this machine")
    return PG_URL


@pytest.fixture
def sql_prefix() -> str:
    """A table prefix of its own, so parallel or repeated runs never see each other's tables."""
    return f"t{uuid.uuid4().hex[:8]}_"
