"""Where Ray runs: a cluster at ``train.address`` / ``$RAY_ADDRESS`` (checked first, never a silent local
fallback), or a local Ray whose files stay under ``$CITYAGENT_HOME/ray``."""

import hashlib
import logging
import os
import socket
import tempfile
from pathlib import Path

from cityagent.errors import CityAgentError
from cityagent.home import home_dir

log = logging.getLogger(__name__)
STORAGE_ENV = "CITYAGENT_RAY_STORAGE"  # shared storage (NFS path, s3://...) for checkpoints on a multi-node cluster
SOCKET_ROOM = 60  # Ray adds ~60 characters of session/sockets/... below its temp dir; AF_UNIX paths stop at 107


def ray_address(address: str | None) -> str | None:
    """``train.address``, else ``$RAY_ADDRESS``, else None (start a local Ray)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def check_reachable(address: str, timeout: float = 3.0) -> None:
    """Fail fast, naming the address, when nothing listens at ``host:port`` (``ray://host:port`` too)."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise CityAgentError(f"Ray address {address!r} is not host:port (e.g. 10.0.0.5:6380 or ray://head:10001)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise CityAgentError(
            f"cannot reach the Ray cluster at {address} ({e}); start it (`ray start --head "
            f"--port ...`), fix train.address / RAY_ADDRESS, or unset them to use a local Ray"
        ) from e


def _chain(e: BaseException | None) -> str:
    """Every message in an exception's cause chain (Ray hides the reason in the cause)."""
    parts = []
    while e is not None:
        parts.append(f"{type(e).__name__}: {e}")
        e = e.__cause__ or e.__context__
    return " | ".join(parts)


def ray_temp_dir() -> Path:
    """``$CITYAGENT_HOME/ray/tmp``, or a short folder in the system temp dir when that path is too long for
    Ray's unix sockets."""
    wanted = home_dir() / "ray" / "tmp"
    if len(str(wanted)) + SOCKET_ROOM <= 107:
        return wanted
    digest = hashlib.sha1(str(wanted).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"cityagent-ray-{digest}"


def storage_path() -> str:
    """Where Ray Train persists checkpoints: ``$CITYAGENT_RAY_STORAGE`` or ``$CITYAGENT_HOME/ray/results``."""
    return os.environ.get(STORAGE_ENV) or str(home_dir() / "ray" / "results")


def connect(address: str | None, num_cpus: int, dashboard: bool = False) -> bool:
    """Make sure this process is connected to Ray; True when it started a local instance (the caller stops it).

    Args:
        address: a cluster address; None uses ``$RAY_ADDRESS`` or starts a local Ray.
        num_cpus: CPUs a local Ray may use (at least what the workers ask for).
        dashboard: start a local Ray with its dashboard, whose state API Ray Train needs to release the CPUs of
            a run whose controller was killed (as Tune does to the trials ASHA stops); a few seconds slower.
    """
    import ray

    if ray.is_initialized():
        return False
    target = ray_address(address)
    if target:
        check_reachable(target)
        try:
            ray.init(address=target, log_to_driver=False)
        except (ConnectionError, RuntimeError) as e:
            hint = ""
            if "InvalidAuthToken" in _chain(e) and os.environ.get("RAY_AUTH_MODE") != "token":
                hint = (
                    "; the cluster uses token authentication: start Python with RAY_AUTH_MODE=token and the "
                    "cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN (Ray never sends a token to an "
                    "explicit address unless told to)"
                )
            raise CityAgentError(f"could not connect to the Ray cluster at {target}: {e}{hint}") from e
        log.info("connected to Ray at %s", target)
        return False
    temp = ray_temp_dir()
    temp.mkdir(parents=True, exist_ok=True)
    os.environ.pop("RAY_ADDRESS", None)  # an empty RAY_ADDRESS would make ray.init look for a cluster
    ray.init(
        num_cpus=max(num_cpus, os.cpu_count() or 1),
        include_dashboard=dashboard,
        _temp_dir=str(temp),
        log_to_driver=False,
    )
    log.info("started a local Ray (%d CPUs) with temp dir %s", num_cpus, temp)
    return True
