"""Server credentials: TLS from a certificate and key, mutual TLS when a client CA is given."""

from pathlib import Path

import grpc

from cityagent.errors import ConfigError
from cityagent.serving.config import TlsConfig


def server_credentials(cfg: TlsConfig) -> grpc.ServerCredentials | None:
    """None (plaintext) when no certificate is configured; with `client_ca`, clients must present a cert it signed."""
    if cfg.cert is None and cfg.key is None:
        if cfg.client_ca is not None:
            raise ConfigError(
                "tls.client_ca is set without tls.cert and tls.key; mutual TLS needs a server certificate."
            )
        return None
    if cfg.cert is None or cfg.key is None:
        raise ConfigError("tls needs both cert and key (PEM files); set the missing one or neither.")
    key, cert = _read(cfg.key, "key"), _read(cfg.cert, "cert")
    ca = _read(cfg.client_ca, "client_ca") if cfg.client_ca is not None else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"tls.{what} {path} cannot be read ({e.strerror}); point it at a PEM file.") from e
