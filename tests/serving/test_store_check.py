"""Serving checks its MLflow store as training does: a registry database that refuses, or a sqlite file in a folder
that is not there, fails at once naming it (password masked); a server URL with credentials is asked with them."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cityagent.health import unreachable
from cityagent.serving.errors import ModelLoadError
from cityagent.serving.sources import RegistrySource
from tests.mlflow_servers import free_port


def test_a_refused_registry_database_fails_fast_with_the_password_masked():
    url = f"postgresql://mlflow:s3cret@127.0.0.1:{free_port()}/mlflow"
    t0 = time.perf_counter()
    with pytest.raises(ModelLoadError) as err:
        RegistrySource(url)
    assert time.perf_counter() - t0 < 5  # not MLflow's minutes of retries
    msg = str(err.value)
    assert msg.startswith(f"MLflow tracking database postgresql://mlflow:***@127.0.0.1:{url.split(':')[3]}")
    assert "is not reachable (" in msg and "Connection refused" in msg and "s3cret" not in msg
    assert "start the database server or create the database, fix MLFLOW_TRACKING_URI / registry.tracking_uri" in msg


def test_a_sqlite_registry_in_a_missing_folder_is_refused_not_created(tmp_path):
    typo = tmp_path / "tema" / "mlflow.db"
    with pytest.raises(ModelLoadError, match=rf"its folder {typo.parent} does not exist\); create the folder, fix"):
        RegistrySource(f"sqlite:///{typo}")
    assert not typo.parent.exists()  # MLflow would have made it, and every model would be "not found" there


@pytest.fixture
def health_server():
    """A /health endpoint that records the Authorization header it was sent."""
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], seen
    server.shutdown()


def test_a_server_url_with_credentials_is_asked_with_basic_auth(health_server):
    port, seen = health_server
    assert unreachable(f"http://ops:p%40ss@127.0.0.1:{port}") is None  # userinfo was once read as the host
    assert seen == ["Basic b3BzOnBAc3M="]  # ops:p@ss, unquoted as MLflow's client sends it
    assert unreachable(f"http://127.0.0.1:{port}/") is None and seen[-1] is None


def test_an_unparseable_or_closed_server_url_is_a_reason_not_a_traceback():
    assert "nonnumeric port" in (unreachable("http://127.0.0.1:abc") or "")
    assert unreachable(f"http://u:p@127.0.0.1:{free_port()}") is not None
