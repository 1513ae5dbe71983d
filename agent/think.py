"""Think: ask the prediction service for forecasts over gRPC (Open Inference Protocol), like any other client.

The stock ``tritonclient.grpc`` client talks to ``cityagent serve`` (or any OIP server). A call that fails because
the service is down, restarting or overloaded is retried with exponential backoff on a fresh channel; each retry
is reported, and after the last one ``ServingUnavailable`` says what failed, so the caller can keep what it has.
"""

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from cityagent.agent.sense import ModelFacts, Window
from cityagent.errors import CityAgentError, ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")
# what a restart, an outage or an overload looks like on the wire: worth another try
TRANSIENT = {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.RESOURCE_EXHAUSTED"}
TRANSIENT |= {"StatusCode.CANCELLED", "StatusCode.ABORTED"}


class ServingUnavailable(CityAgentError):
    """The prediction service did not answer after every retry."""


class VersionMoved(CityAgentError):
    """The served version changed between reading the model's facts and asking it; read them again."""


@dataclass(frozen=True)
class Backoff:
    """Retry schedule: ``retries`` waits of ``base_s``, ``2 * base_s``, ... capped at ``max_s`` seconds."""

    retries: int = 6
    base_s: float = 0.5
    max_s: float = 30.0

    def delays(self) -> Iterator[float]:
        for i in range(self.retries):
            yield min(self.base_s * 2**i, self.max_s)


@dataclass(frozen=True)
class Forecast:
    """A served model's answer: ``values [H, N]`` in real units (the median level of a quantile model), and for a
    quantile model the outermost levels ``lower``/``upper [H, N]`` at ``band`` (e.g. (0.1, 0.9))."""

    model: str
    version: str
    values: np.ndarray
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    band: tuple[float, float] | None = None

    @classmethod
    def of(cls, model: str, version: str, y: np.ndarray, facts: ModelFacts) -> "Forecast":
        """From one answer ``[H, N]`` or ``[H, N, Q]`` of the model ``facts`` describe."""
        if y.ndim == 2 or y.shape[-1] < 2:
            return cls(model, version, point(y, facts))
        levels = facts.quantiles or [float("nan")] * y.shape[-1]  # unnamed levels: an interval of unknown level
        return cls(model, version, point(y, facts), y[..., 0], y[..., -1], (levels[0], levels[-1]))


class ServingClient:
    """Forecasts from the serving endpoint at ``address`` (``host:port``).

    Args:
        address: where ``cityagent serve`` listens.
        timeout_s: deadline of one call, seconds.
        tls_ca: CA certificate (PEM) that verifies a TLS server; None talks plaintext.
        token: bearer token for a server with auth on.
        backoff: retry schedule for transient failures.
        report: called with one line per retry (e.g. to print it); default logs a warning.
        sleep: how to wait between retries (tests pass a fake clock).
    """

    def __init__(
        self,
        address: str,
        *,
        timeout_s: float = 5.0,
        tls_ca: Path | None = None,
        token: str | None = None,
        backoff: Backoff | None = None,
        report: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.address, self.timeout_s = address, timeout_s
        self._ca = str(tls_ca) if tls_ca else None  # tritonclient reads the PEM file itself
        self._headers = {"authorization": f"Bearer {token}"} if token else None
        self.backoff = backoff or Backoff()
        self._report = report or log.warning
        self._sleep = sleep
        self._client: Any = None

    @classmethod
    def from_config(cls, cfg: Any, **kwargs: Any) -> "ServingClient":
        """From an ``AgentConfig`` (its ``serving`` target and ``loop`` retry settings)."""
        backoff = Backoff(cfg.loop.retries, cfg.loop.backoff_s, cfg.loop.backoff_max_s)
        token = os.environ.get(cfg.serving.token_env) or None
        return cls(
            cfg.serving.address, timeout_s=cfg.serving.timeout_s, tls_ca=cfg.serving.tls_ca, token=token,
            backoff=backoff, **kwargs,
        )  # fmt: skip

    def _connect(self) -> Any:
        import tritonclient.grpc as tc

        if self._client is None:
            self._client = tc.InferenceServerClient(self.address, ssl=self._ca is not None, root_certificates=self._ca)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _transient(self, e: Exception) -> bool:
        status = e.status() if hasattr(e, "status") else None
        if status in TRANSIENT:
            return True
        if status == "StatusCode.NOT_FOUND":  # a restarting server answers before its models are loaded
            try:
                return not self._connect().is_server_ready(headers=self._headers, client_timeout=self.timeout_s)
            except Exception:
                return True
        return False

    def _call(self, what: str, fn: Callable[[Any], T]) -> T:
        """``fn(client)``, retried on transient failures with backoff on a fresh channel each time."""
        from tritonclient.utils import InferenceServerException

        delays = self.backoff.delays()
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn(self._connect())
            except InferenceServerException as e:
                if not self._transient(e):
                    raise ServingUnavailable(f"{what} at {self.address} failed: {e}") from e
                wait = next(delays, None)
                if wait is None:
                    raise ServingUnavailable(
                        f"{what}: the prediction service at {self.address} did not answer after {attempt} "
                        f"attempt(s) ({e}); start it with `cityagent serve` or fix serving.address"
                    ) from e
                self._report(f"{what}: {e.status() or e}; retry {attempt} of {self.backoff.retries} in {wait:.1f} s")
                self.close()  # a fresh channel reconnects at once instead of waiting out gRPC's own backoff
                self._sleep(wait)

    def facts(self, name: str) -> ModelFacts:
        """The served model's facts (nodes, step, offsets, features, version) from its ModelMetadata answer."""
        from cityagent.serving.proto import inference_pb2 as pb

        meta = self._call(
            f"metadata of {name}",
            lambda c: c.get_model_metadata(name, headers=self._headers, client_timeout=self.timeout_s),
        )
        # tritonclient's message does not know the parameters extension (field 6); the OIP schema we serve does
        ours = pb.ModelMetadataResponse.FromString(meta.SerializeToString())
        params = {k: v.string_param for k, v in ours.parameters.items()}
        if not params:
            raise ConfigError(f"{name} at {self.address} sends no model facts in its metadata; serve it with cityagent")
        return ModelFacts.from_parameters(name, params)

    def forecast(self, window: Window) -> Forecast:
        """Ask the exact version the window was built for; ``VersionMoved`` if the server swapped it meanwhile."""
        import tritonclient.grpc as tc

        facts = window.facts
        x = np.ascontiguousarray(window.x, dtype=np.float32)
        tensor = tc.InferInput("x", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        try:
            result = self._call(
                f"forecast of {facts.name}",
                lambda c: c.infer(
                    facts.name,
                    [tensor],
                    model_version=facts.version,
                    outputs=[tc.InferRequestedOutput("y")],
                    headers=self._headers,
                    client_timeout=self.timeout_s,
                ),
            )
        except ServingUnavailable as e:
            if "has no version" in str(e):
                raise VersionMoved(f"{facts.name} no longer serves version {facts.version}") from e
            raise
        return Forecast.of(facts.name, result.get_response().model_version, result.as_numpy("y")[0], facts)


def point(y: np.ndarray, facts: ModelFacts) -> np.ndarray:
    """``[H, N]`` from one answer ``[H, N]`` or ``[H, N, Q]`` (the level nearest the median)."""
    if y.ndim == 2:
        return y
    q = int(np.argmin(np.abs(np.asarray(facts.quantiles) - 0.5))) if facts.quantiles else y.shape[-1] // 2
    return y[..., q]
