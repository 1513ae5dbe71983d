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
def sql_prefix(request):
    """A table prefix of its own, so parallel or repeated runs never see each other's tables; a test that also
    uses ``pg_url`` has that prefix's hub tables dropped from PostgreSQL afterwards."""
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    yield prefix
    if "pg_url" in request.fixturenames:
        drop_hub_tables(PG_URL, prefix)


def drop_hub_tables(url: str, prefix: str) -> None:
    import sqlalchemy as sa

    from cityagent.hub.schema import TABLES

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as conn:
            for name in [*TABLES, "hub_meta"]:
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{prefix}{name}"'))
    finally:
        engine.dispose()
