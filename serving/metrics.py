"""Prometheus metrics of the prediction service, on their own registry and HTTP port."""

import logging
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from cityagent.errors import ConfigError

log = logging.getLogger(__name__)

# Labels only ever carry names of loaded models: requests for unknown names count under this one,
# so random names from clients cannot grow the label set without bound.
UNKNOWN_MODEL = "_unknown"
_LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class ModelSeries:
    """One model's label children, looked up once: `labels()` takes a lock and builds tuples on every call."""

    requests: Any
    successes: Any
    latency: Any
    queue_time: Any
    batch_size: Any


class ServingMetrics:
    """Per-model request counters, latency / queue-time / batch-size histograms and the loaded version.

    Args:
        registry: where the metrics live; a fresh one by default so several servers can share a process.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("cityagent_serving_requests", "Inference requests received.", ["model"], registry=r)
        self.successes = Counter("cityagent_serving_successes", "Inference requests answered.", ["model"], registry=r)
        self.failures = Counter(
            "cityagent_serving_failures", "Inference requests refused or failed.", ["model", "code"], registry=r
        )
        self.latency = Histogram(
            "cityagent_serving_latency_seconds", "Request latency inside the server, s.", ["model"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_time = Histogram(
            "cityagent_serving_queue_seconds", "Time a request waited for its batch, s.", ["model"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "cityagent_serving_batch_size", "Rows per ONNX Runtime run.", ["model"], buckets=_BATCH_BUCKETS, registry=r
        )
        self.loaded_version = Gauge(
            "cityagent_serving_loaded_version",
            "1 for each model version now serving.",
            ["model", "version"],
            registry=r,
        )
        self.swaps = Counter(
            "cityagent_serving_swaps", "Model version loads by outcome.", ["model", "outcome"], registry=r
        )
        self._server = None
        self._series: dict[str, ModelSeries] = {}

    def series(self, model: str) -> ModelSeries:
        """The per-model children (model is a loaded name or UNKNOWN_MODEL, so this stays small)."""
        found = self._series.get(model)
        if found is None:
            found = self._series[model] = ModelSeries(
                *(m.labels(model) for m in (self.requests, self.successes, self.latency, self.queue_time,
                                            self.batch_size))
            )  # fmt: skip
        return found

    def observe_batch(self, model: str, waits_s: list[float], rows: int) -> None:
        series = self.series(model)
        for wait in waits_s:
            series.queue_time.observe(wait)
        series.batch_size.observe(rows)

    def set_version(self, model: str, version: str, old: str | None = None) -> None:
        """Mark `version` as serving and drop `old`'s series (the store passes None while another alias serves it)."""
        if old is not None and old != version:
            try:
                self.loaded_version.remove(model, old)
            except KeyError:
                pass
        self.loaded_version.labels(model, version).set(1)

    def serve(self, host: str, port: int) -> int:
        """Expose /metrics over HTTP on host:port (0 = any free port); return the bound port."""
        try:
            self._server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as e:  # e.g. EADDRINUSE: another server (or another cityagent serve) has the port
            raise ConfigError(
                f"cannot serve metrics on {host}:{port} ({e.strerror or e}); is another server there? "
                "pick another --metrics-port (metrics_port), or pass --no-metrics."
            ) from e
        bound = self._server.server_port
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
