"""Assembles the service: grpc.aio server (OIP + grpc.health.v1 + reflection), model store, metrics, TLS, auth."""

import asyncio
import ipaddress
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from cityagent.errors import ConfigError
from cityagent.serving.auth import TokenAuth, load_token
from cityagent.serving.config import ServingConfig
from cityagent.serving.dataplane import DataPlane
from cityagent.serving.guard import add_guarded_inference_service
from cityagent.serving.health import INFERENCE_SERVICE, Health
from cityagent.serving.metrics import ServingMetrics
from cityagent.serving.proto import inference_pb2
from cityagent.serving.servicer import InferenceServicer
from cityagent.serving.spec import parse_spec
from cityagent.serving.store import ModelStore
from cityagent.serving.tls import server_credentials

log = logging.getLogger(__name__)

# gRPC core cancels calls it has accepted but the event loop has not picked up yet once more than 1000 wait
# (`grpc.server.max_pending_requests`; all of them beyond its hard limit of 3000), with a bare CANCELLED: a client
# can't tell that from its own cancellation, retry policies don't retry it, and our metrics never see it. A burst of
# a backfill's async calls reaches that in a second. So core's limit is lifted, and the server's own admission
# control answers instead: each model's bounded queue (`batching.max_queue_size`) refuses the overflow at once with
# RESOURCE_EXHAUSTED 'queue full', which clients retry with backoff. (`maximum_concurrent_rpcs` would not help: it
# is checked only after the loop picks a call up, behind the same core limit.) A waiting call holds only its
# stream in core, and HTTP/2 flow control bounds what each sends before the server reads it.
MAX_PENDING_CALLS = 1_000_000


class InferenceServer:
    """The prediction service; `await start()` binds, loads every model and turns health to SERVING.

    Args:
        cfg: the serving config (models, ports, ORT, batching, registry polling, TLS, auth).
    """

    def __init__(self, cfg: ServingConfig) -> None:
        if not cfg.models:
            raise ConfigError("no models to serve; pass --model NAME@ALIAS or PATH.onnx, or list them under models:.")
        self.cfg = cfg
        self.metrics = ServingMetrics()
        self.executor = ThreadPoolExecutor(cfg.workers, thread_name_prefix="ort")
        self.store = ModelStore([parse_spec(s) for s in cfg.models], cfg, self.executor, self.metrics)
        self.dataplane = DataPlane(self.store, self.metrics)
        self.health = Health()
        self.port: int | None = None
        self.metrics_port: int | None = None
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        cfg = self.cfg
        credentials = server_credentials(cfg.tls)
        # Auth first, so nothing from an unauthenticated caller is even decoded.
        interceptors = [TokenAuth(load_token(cfg.auth), cfg.auth.open_services)] if cfg.auth.enabled else []
        limit = cfg.max_message_mb * 1024 * 1024
        options = [
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0),  # a second server on a taken port must fail, not share it silently
            ("grpc.server.max_pending_requests", MAX_PENDING_CALLS),  # see MAX_PENDING_CALLS
            ("grpc.server.max_pending_requests_hard_limit", MAX_PENDING_CALLS),
            # Client keepalive pings: more often than this gets GOAWAY "too_many_pings" (gRPC's default: 5 min).
            ("grpc.http2.min_ping_interval_without_data_ms", round(cfg.keepalive.min_ping_interval_s * 1000)),
            ("grpc.keepalive_permit_without_calls", int(cfg.keepalive.permit_without_calls)),
        ]
        server = grpc.aio.server(interceptors=interceptors or None, options=options)
        add_guarded_inference_service(InferenceServicer(self.dataplane, cfg.max_stream_in_flight), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, server)
        names = (INFERENCE_SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server, pool=_reflection_pool())
        address = f"{cfg.host}:{cfg.port}"
        try:
            self.port = (
                server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
            )
        except RuntimeError as e:
            raise ConfigError(f"cannot listen on {address} ({e}); is another server there? pick another port.") from e
        self._server = server
        await self.health.set_serving(False)
        await server.start()  # live (and NOT_SERVING) while the models load
        try:
            if cfg.metrics_port is not None:  # before the models load, so a taken port fails fast
                self.metrics_port = self.metrics.serve(cfg.host, cfg.metrics_port)
            await self.store.start()
        except BaseException:
            await self.stop(grace=0)
            raise
        await self.health.set_serving(True)
        # The first line ends with the address, which scripts (benchmarks/serving.py) read the port from.
        log.info("serving %s on %s:%d", self.store.names(), cfg.host, self.port)
        on = {True: "on", False: "off"}
        tls, mutual, auth = credentials is not None, cfg.tls.client_ca is not None, cfg.auth.enabled
        log.info("TLS %s, mutual TLS %s, token auth %s", on[tls], on[tls and mutual], on[auth])
        if not _is_loopback(cfg.host):
            _warn_if_exposed(cfg.host, tls, auth or (tls and mutual))
        log.info(
            "requests and responses up to %d MiB (max_message_mb); larger ones are refused with RESOURCE_EXHAUSTED "
            "'message larger than max'",
            cfg.max_message_mb,
        )

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, let in-flight requests finish (up to `grace` s, default cfg.grace_s), then release all.

        New requests, unary or on an open stream, are refused from now on with UNAVAILABLE 'the server is shutting
        down; ...'; each open ModelStreamInfer stream stops reading, answers what it has read, and ends with that
        status, so its client knows to reconnect (to another replica) and resend what was not answered.
        """
        self.dataplane.stop_taking_requests()
        await self.health.shutdown()
        if self._server is not None:
            await self._server.stop(self.cfg.grace_s if grace is None else grace)
        await self.store.close()
        await asyncio.to_thread(self.metrics.close)  # blocks up to 0.5 s (the HTTP server's poll)
        self.executor.shutdown(wait=True)

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()


def _is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: assume it is reachable from elsewhere
        return False


def _warn_if_exposed(host: str, tls: bool, authenticated: bool) -> None:
    """Warn about a service reachable beyond this machine without TLS or without client authentication."""
    risks = {
        (False, False): "TLS or auth: requests and forecasts travel in clear text, and anyone who can reach the port "
        "can call it unauthenticated",
        (False, True): "TLS: requests, forecasts and the bearer token travel in clear text, so anyone on the network "
        "path can read the token and call the service",
        (True, False): "auth: anyone who can reach the port can call it unauthenticated",
    }
    if (tls, authenticated) in risks:
        log.warning(
            "listening on %s without %s. Turn on TLS (tls.cert + tls.key, or --tls-cert/--tls-key) and token auth "
            "(auth.enabled, or --token-file), or bind 127.0.0.1, or keep the port inside a private network (e.g. "
            "behind a Kubernetes NetworkPolicy).",
            host,
            risks[tls, authenticated],
        )


def _reflection_pool() -> descriptor_pool.DescriptorPool:
    """The inference messages' private pool, plus the health and reflection files so reflection describes all three."""
    pool = inference_pb2.DESCRIPTOR.pool
    for module in (health_pb2, reflection_pb2):
        try:
            pool.FindFileByName(module.DESCRIPTOR.name)
        except KeyError:
            proto = descriptor_pb2.FileDescriptorProto()
            module.DESCRIPTOR.CopyToProto(proto)
            pool.AddSerializedFile(proto.SerializeToString())
    return pool


async def serve_forever(cfg: ServingConfig) -> None:
    """Run until SIGINT or SIGTERM, then shut down gracefully (what `cityagent serve` calls)."""
    server = InferenceServer(cfg)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down (grace %.1f s)", cfg.grace_s)
    await server.stop()
