"""TLS, mutual TLS and bearer-token auth, with the stock tritonclient."""

import contextlib
import logging
import threading

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from cityagent.serving import server as server_module
from cityagent.serving.auth import load_token
from cityagent.serving.config import AuthConfig
from tests.serving import onnx_models as om
from tests.serving.certs import make_pki
from tests.serving.conftest import NAME, triton_input


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def infer(client: tc.InferenceServerClient, **kwargs) -> np.ndarray:
    return client.infer(NAME, [triton_input(om.window())], client_timeout=10, **kwargs).as_numpy("y")


def test_tls_serves_clients_that_trust_the_ca_and_refuses_plaintext(start_server, linear_path, pki):
    server = start_server([f"{NAME}={linear_path}"], tls={"cert": pki.server_cert, "key": pki.server_key})
    with tc.InferenceServerClient(server.address, ssl=True, root_certificates=str(pki.ca)) as client:
        np.testing.assert_allclose(infer(client), om.reference(om.window()), rtol=1e-5, atol=1e-4)
    with tc.InferenceServerClient(server.address) as plain, pytest.raises(InferenceServerException):
        infer(plain)


def test_mutual_tls_requires_a_client_certificate_from_the_ca(start_server, linear_path, pki):
    tls = {"cert": pki.server_cert, "key": pki.server_key, "client_ca": pki.ca}
    server = start_server([f"{NAME}={linear_path}"], tls=tls)
    good = {"private_key": str(pki.client_key), "certificate_chain": str(pki.client_cert)}
    with tc.InferenceServerClient(server.address, ssl=True, root_certificates=str(pki.ca), **good) as client:
        assert infer(client).shape == (1, om.H, om.N)
    rogue = {"private_key": str(pki.rogue_key), "certificate_chain": str(pki.rogue_cert)}
    for creds in ({}, rogue):  # no client certificate, or one another CA signed
        with tc.InferenceServerClient(server.address, ssl=True, root_certificates=str(pki.ca), **creds) as client:
            with pytest.raises(InferenceServerException):
                infer(client)


def test_bearer_token_auth(start_server, linear_path, monkeypatch):
    monkeypatch.setenv("CITYAGENT_SERVING_TOKEN", "s3cret")
    server = start_server([f"{NAME}={linear_path}"], auth={"enabled": True})
    with tc.InferenceServerClient(server.address) as client:
        assert infer(client, headers={"authorization": "Bearer s3cret"}).shape == (1, om.H, om.N)
        for headers in (None, {"authorization": "Bearer wrong"}, {"authorization": "s3cret"}):
            with pytest.raises(InferenceServerException) as info:
                infer(client, headers=headers)
            assert info.value.status() == "StatusCode.UNAUTHENTICATED"
            assert "authorization: Bearer <token>" in info.value.message()
        with pytest.raises(InferenceServerException, match=r"UNAUTHENTICATED|Bearer"):
            client.get_model_metadata(NAME)
        errors: list = []
        done = threading.Event()
        client.start_stream(callback=lambda result, error: (errors.append(error), done.set()))
        with contextlib.suppress(InferenceServerException):  # the stream may already be closed by the refusal
            client.async_stream_infer(NAME, [triton_input(om.window())])
        assert done.wait(10)
        client.stop_stream()
        assert "UNAUTHENTICATED" in str(errors[0].status())
    with grpc.insecure_channel(server.address) as channel:  # health stays open for load balancers
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
        assert status == health_pb2.HealthCheckResponse.SERVING


def test_auth_without_a_token_is_a_config_error(start_server, linear_path, monkeypatch):
    from cityagent.errors import ConfigError

    monkeypatch.delenv("CITYAGENT_SERVING_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="no token is set"):
        start_server([f"{NAME}={linear_path}"], auth={"enabled": True})


def test_an_empty_token_file_is_a_config_error_naming_the_file(tmp_path):
    from cityagent.errors import ConfigError

    empty = tmp_path / "token"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match=f"auth.token_file {empty} is empty"):
        load_token(AuthConfig(enabled=True, token_file=empty))


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("[::]", False),
        ("10.1.2.3", False),
        ("serving.example.org", False),
    ],
)
def test_which_hosts_count_as_this_machine_only(host, loopback):
    assert server_module._is_loopback(host) is loopback


def _started_log(start_server, linear_path, caplog, monkeypatch, exposed: bool, **overrides) -> str:
    """The server's startup log, as if bound beyond this machine when `exposed` (tests only bind 127.0.0.1)."""
    caplog.set_level(logging.INFO, logger="cityagent.serving.server")
    monkeypatch.setattr(server_module, "_is_loopback", lambda host: not exposed)
    start_server([f"{NAME}={linear_path}"], **overrides)
    return caplog.text


def test_an_exposed_server_without_tls_or_auth_warns_at_startup(start_server, linear_path, caplog, monkeypatch):
    text = _started_log(start_server, linear_path, caplog, monkeypatch, exposed=True)
    assert "TLS off, mutual TLS off, token auth off" in text
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "without TLS or auth: requests and forecasts travel in clear text" in warning
    assert "can call it unauthenticated" in warning and "tls.cert + tls.key" in warning and "--token-file" in warning


def test_auth_without_tls_warns_that_the_token_travels_in_clear(start_server, linear_path, caplog, monkeypatch):
    monkeypatch.setenv("CITYAGENT_SERVING_TOKEN", "s3cret")
    text = _started_log(start_server, linear_path, caplog, monkeypatch, exposed=True, auth={"enabled": True})
    assert "TLS off, mutual TLS off, token auth on" in text
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "without TLS: requests, forecasts and the bearer token travel in clear text" in warning


@pytest.mark.parametrize("exposed", [True, False])
def test_tls_and_auth_are_said_at_startup_and_silence_the_warning(
    start_server, linear_path, caplog, monkeypatch, pki, exposed
):
    monkeypatch.setenv("CITYAGENT_SERVING_TOKEN", "s3cret")
    tls = {"cert": pki.server_cert, "key": pki.server_key, "client_ca": pki.ca}
    text = _started_log(
        start_server, linear_path, caplog, monkeypatch, exposed=exposed, tls=tls, auth={"enabled": True}
    )
    assert "TLS on, mutual TLS on, token auth on" in text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_server_on_this_machine_only_does_not_warn(start_server, linear_path, caplog, monkeypatch):
    text = _started_log(start_server, linear_path, caplog, monkeypatch, exposed=False)
    assert "TLS off, mutual TLS off, token auth off" in text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
