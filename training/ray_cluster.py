"""Where Ray runs: a cluster at ``train.address`` / ``$RAY_ADDRESS`` (checked first, never a silent local
fallback), or a local Ray whose files stay under ``$CITYAGENT_HOME/ray``."""

import hashlib
import logging
import os
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cityagent.errors import CityAgentError
from cityagent.home import home_dir

log = logging.getLogger(__name__)
STORAGE_ENV = "CITYAGENT_RAY_STORAGE"  # shared storage (NFS path, s3://...) for checkpoints on a multi-node cluster
LOOPBACK = "127.0.0.1"  # a local Ray listens here only: nothing of it is reachable from the network
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
    check_ray_answers(hostport, address.startswith("ray://"), timeout)


def check_ray_answers(hostport: str, client: bool = False, timeout: float = 3.0) -> None:
    """Ask ``hostport`` for its cluster id over gRPC with a short deadline, so that a port where something
    other than Ray listens (Redis, MQTT) fails now instead of after ``ray.init``'s minutes of retries.

    Any gRPC answer means a Ray server (a ``ray://`` client server answers "unimplemented"); a refused token
    fails here too, with the fix. Skipped under ``RAY_USE_TLS``, whose handshake this plain probe cannot do.
    """
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return
    token = os.environ.get("RAY_AUTH_MODE") == "token"
    try:
        from ray._private.authentication.grpc_authentication_client_interceptor import (
            _get_authentication_metadata_tuple,
        )

        metadata = _get_authentication_metadata_tuple() if token else ()
    except Exception:  # an older or newer Ray: probe without the token
        metadata = ()
    with grpc.insecure_channel(hostport) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        try:
            stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=timeout, metadata=metadata)
            return
        except grpc.RpcError as e:
            code, details = e.code(), e.details() or ""
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        what = "a Ray client server (ray://)" if client else "a Ray cluster (GCS)"
        port = (
            "the head's client server port (10001 by default)"
            if client
            else "the head's GCS port (`ray start --head --port PORT`)"
        )
        why = details.rsplit("last error: ", 1)[-1].splitlines()[0][:200]
        raise CityAgentError(
            f"{hostport} answers but is not {what} ({why}); point train.address / RAY_ADDRESS at {port}"
        )
    if code == grpc.StatusCode.UNAUTHENTICATED:
        raise CityAgentError(f"the Ray cluster at {hostport} refused this client: {details}; {auth_hint(token)}")


def auth_hint(token_mode: bool) -> str:
    """What to do when a cluster with token authentication refuses us."""
    if not token_mode:
        return (
            "the cluster uses token authentication: set RAY_AUTH_MODE=token in this shell (Ray sends no token "
            "to an explicit address without it), with the cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN"
        )
    return "RAY_AUTH_MODE=token is set, so the token is wrong: copy the head's ~/.ray/auth_token or set RAY_AUTH_TOKEN"


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


def note_local_storage(target: str) -> None:
    """Warn when a cluster of several machines would checkpoint to this driver's disk: a worker on another machine
    writes its checkpoints where it runs, so a resume after a failure cannot find them."""
    import ray

    hosts = {n.get("NodeManagerAddress") for n in ray.nodes() if n.get("Alive")}
    if len(hosts) > 1 and not os.environ.get(STORAGE_ENV) and "://" not in storage_path():
        log.warning(
            "the Ray cluster at %s spans %d machines but checkpoints go to %s on this one; set %s to storage every "
            "node sees (s3://bucket/ray or a shared mount), or a worker that dies cannot be resumed",
            target,
            len(hosts),
            storage_path(),
            STORAGE_ENV,
        )


def check_capacity(target: str, num_cpus: int, cpus_per_worker: int | None = None, num_gpus: int = 0) -> None:
    """Refuse a run that needs more CPUs (or GPUs) than the connected cluster has and can ever get (it would wait
    forever for its placement group); note when it waits for an autoscaler or for CPUs other jobs hold."""
    import ray

    total = ray.cluster_resources()
    if num_gpus > total.get("GPU", 0.0):
        _short(target, "GPU", num_gpus, total.get("GPU", 0.0), "use train.accelerator=cpu or a cluster with GPUs")
    if num_cpus > total.get("CPU", 0.0):
        have = total.get("CPU", 0.0)
        fit = int(have // cpus_per_worker) if cpus_per_worker else None
        fix = (
            f"train.workers={fit} (--workers {fit})"
            if fit
            else f"train.cpus_per_worker ≤ {have:g}"
            if fit == 0
            else "fewer train.workers"
        )
        _short(target, "CPU", num_cpus, have, f"use {fix} or add nodes")
        return
    free = ray.available_resources().get("CPU", 0.0)
    if num_cpus > free:
        log.warning(
            "%g of the Ray cluster's %g CPUs are free, the run needs %d: waiting until other jobs release them",
            free,
            total.get("CPU", 0.0),
            num_cpus,
        )


def _short(target: str, kind: str, need: int, have: float, fix: str) -> None:
    """The cluster has fewer ``kind`` than the run needs: refused unless its autoscaler can add them."""
    from ray._private.state import state

    why = "train.workers × train.cpus_per_worker" if kind == "CPU" else "train.accelerator=gpu: one per worker"
    try:
        most = (state.get_max_resources_from_cluster_config() or {}).get(kind)  # None: no autoscaler
    except Exception:  # Ray-internal, unreadable through ray:// : whether it can autoscale is unknown
        log.warning("the Ray cluster at %s has %g of the %d %ss this run needs: it waits", target, have, need, kind)
        return
    if not most or most < need:
        can = f"at most {most:g} with autoscaling" if most else "and cannot autoscale"
        raise CityAgentError(
            f"the run needs {need} {kind}s ({why}) but the Ray cluster at {target} has {have:g} ({can}); {fix}"
        )
    log.warning(
        "the Ray cluster at %s has %g of the %d %ss this run needs: waiting for its autoscaler",
        target,
        have,
        need,
        kind,
    )


@contextmanager
def _loopback_node() -> Iterator[None]:
    """Let ``ray.init(_node_ip_address="127.0.0.1")`` keep the loopback address.

    On Linux Ray replaces a loopback node address with the machine's network address (so that other nodes could
    join), and its GCS, raylet, object manager and workers then listen on every interface. A Ray this process
    starts for one run serves only this machine, so it is pinned to loopback: Ray's own switch for that (what it
    does on macOS and Windows) is turned on while ``ray.init`` resolves the address, then restored, so a later
    ``ray.init(address=cluster)`` in this process still finds its network address.
    """
    from ray._private import ray_constants

    before = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    if before is not None:
        ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if before is not None:
            ray_constants.ENABLE_RAY_CLUSTER = before


def python_sigterm_first() -> None:
    """Put Python's SIGTERM handler back in front of the one ``ray.init`` adds natively.

    Ray's core installs absl's failure-signal handler for SIGTERM. It prints a stack dump ("*** SIGTERM received"),
    passes the signal on to Python's handler and arms ``alarm(3)``, whose SIGALRM aborts the process. Whatever a
    SIGTERM's clean-up did after those 3 seconds (marking the MLflow run FAILED on a team server, the registry's
    history entry, releasing the task's lock) was cut off, and the process exited 134 (SIGABRT), not 143.
    Installing the Python handler again takes the native one out of the path; which Python handler runs (ray.init's
    ``sys.exit``, or a caller's) is unchanged. Main thread only, where Python may set handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    handler = signal.getsignal(signal.SIGTERM)
    if handler is not None:  # None: set outside Python, nothing to put back
        signal.signal(signal.SIGTERM, handler)


def connect(
    address: str | None,
    num_cpus: int,
    dashboard: bool = False,
    cpus_per_worker: int | None = None,
    num_gpus: int = 0,
) -> bool:
    """Make sure this process is connected to Ray; True when it started a local instance (the caller stops it).

    Args:
        address: a cluster address; None uses ``$RAY_ADDRESS`` or starts a local Ray.
        num_cpus: CPUs the run needs: a local Ray gets at least these; a cluster with fewer is refused.
        dashboard: start a local Ray with its dashboard, whose state API Ray Train needs to release the CPUs of
            a run whose controller was killed (as Tune does to the trials ASHA stops); a few seconds slower.
        cpus_per_worker: ``train.cpus_per_worker``, to name the ``--workers`` a too-small cluster can take.
        num_gpus: GPUs the run needs (``train.accelerator=gpu``: one per worker); a cluster or machine with fewer
            is refused rather than waited on forever.
    """
    import ray

    if ray.is_initialized():  # the caller's own session (a notebook's ray.init()): checked like any cluster
        session = getattr(ray.get_runtime_context(), "gcs_address", None) or "this process's Ray session"
        check_capacity(session, num_cpus, cpus_per_worker, num_gpus)
        return False
    target = ray_address(address)
    if target:
        check_reachable(target)
        try:
            context = ray.init(address=target, log_to_driver=False)
        except (ConnectionError, RuntimeError) as e:
            hint = ""
            if "InvalidAuthToken" in _chain(e):
                hint = "; " + auth_hint(os.environ.get("RAY_AUTH_MODE") == "token")
            raise CityAgentError(f"could not connect to the Ray cluster at {target}: {e}{hint}") from e
        python_sigterm_first()
        log.info("connected to Ray at %s", target)
        if not getattr(context, "dashboard_url", "unknown"):  # no state API: Ray Train's cleaners never exit
            log.warning(
                "the Ray cluster at %s runs without its dashboard: every Tune trial leaves a PlacementGroupCleaner "
                "actor (~200 MB) behind; start the head with its dashboard (the default) to avoid that",
                target,
            )
        try:
            check_capacity(target, num_cpus, cpus_per_worker, num_gpus)
        except CityAgentError:
            ray.shutdown()
            raise
        note_local_storage(target)
        return False
    from cityagent.training.housekeeping import keep_sessions, prune_sessions

    temp = ray_temp_dir()
    temp.mkdir(parents=True, exist_ok=True)
    prune_sessions(temp, keep_sessions())  # Ray never deletes a session's folder; a scheduler starts one a retrain
    os.environ.pop("RAY_ADDRESS", None)  # an empty RAY_ADDRESS would make ray.init look for a cluster
    with _loopback_node():
        ray.init(
            num_cpus=max(num_cpus, os.cpu_count() or 1),
            include_dashboard=dashboard,
            dashboard_host=LOOPBACK,
            _node_ip_address=LOOPBACK,
            _temp_dir=str(temp),
            log_to_driver=False,
        )
    python_sigterm_first()
    node_ip = ray.util.get_node_ip_address()
    if node_ip != LOOPBACK:
        log.warning("the local Ray took node address %s, so its ports are reachable from the network", node_ip)
    log.info("started a local Ray (%d CPUs) on %s with temp dir %s", num_cpus, node_ip, temp)
    gpus = ray.cluster_resources().get("GPU", 0.0)
    if num_gpus > gpus:  # Ray saw fewer GPUs on this machine: the run would wait for them forever
        ray.shutdown()
        raise CityAgentError(
            f"the run needs {num_gpus} GPUs (train.accelerator=gpu: one per worker) but Ray sees {gpus:g} on this "
            "machine; use train.accelerator=cpu, fewer --workers, or RAY_ADDRESS of a cluster with GPUs"
        )
    return True
