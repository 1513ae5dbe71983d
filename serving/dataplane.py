"""The data plane: what the service does, free of gRPC (the servicer only translates to and from it)."""

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

import cityagent
from cityagent.serving.errors import InvalidInput, ModelNotFound, ModelUnavailable, ServingError, ShuttingDown
from cityagent.serving.metrics import UNKNOWN_MODEL, ServingMetrics
from cityagent.serving.payload import InferRequest, InferResponse
from cityagent.serving.signature import TensorSpec
from cityagent.serving.store import ModelStore

PLATFORM = "onnxruntime_onnx"  # Triton's platform name for ONNX Runtime models
# ModelMetadata parameters the server adds as plain strings; every other parameter is the exporter's JSON value
SERVER_PARAMETERS = ("version", "source", "onnx_sha256")


@dataclass(frozen=True)
class ModelInfo:
    """What ModelMetadata answers; `parameters` are the ONNX metadata_props (JSON strings from the exporter)."""

    name: str
    versions: list[str]
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    parameters: dict[str, str]


class DataPlane:
    """Health, metadata and inference over the model store.

    Args:
        store: the loaded models.
        metrics: where request counts and latencies go.
    """

    def __init__(self, store: ModelStore, metrics: ServingMetrics) -> None:
        self.store, self.metrics = store, metrics
        self.stopping = asyncio.Event()  # set once shutdown begins: new requests are refused from then on

    def stop_taking_requests(self) -> None:
        self.stopping.set()

    def admit(self) -> None:
        """Raise ShuttingDown (UNAVAILABLE) for a new request once shutdown has begun."""
        if self.stopping.is_set():
            raise ShuttingDown()

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return self.store.ready

    def model_ready(self, name: str, version: str = "") -> bool:
        """False for an unknown model or version, or one still loading (a readiness answer, not an error)."""
        try:
            self.store.get(name, version)
        except (ModelNotFound, ModelUnavailable):
            return False
        return True

    def served_version(self, name: str, version: str = "") -> str:
        """The version that answers `name` (and `version`) now, or "" when none does."""
        try:
            return self.store.get(name, version).version
        except (ModelNotFound, ModelUnavailable):
            return ""

    def server_metadata(self) -> tuple[str, str, list[str]]:
        """(name, version, protocol extensions)."""
        return "cityagent", cityagent.__version__, []

    def model_metadata(self, name: str, version: str = "") -> ModelInfo:
        served = self.store.get(name, version)
        sig = served.model.signature
        params = {  # the exporter's facts, then SERVER_PARAMETERS
            **served.model.metadata,
            "version": served.version,
            "source": str(served.spec),
            "onnx_sha256": served.model.sha256,
        }
        return ModelInfo(name, self.store.versions(name), PLATFORM, sig.inputs, sig.outputs, params)

    async def infer(self, request: InferRequest) -> InferResponse:
        """Validate against the model's signature, queue on its batcher and return the requested outputs."""
        served = self.store.get(request.model_name, request.model_version)
        signature = served.model.signature
        signature.check_inputs(request.inputs)
        signature.check_outputs(request.outputs)
        outputs = await served.batcher.submit(request.inputs)  # the version chosen here answers, even mid-swap
        if request.outputs:
            outputs = {name: outputs[name] for name in request.outputs}
        _check_finite(request, outputs)
        return InferResponse(request.model_name, served.version, request.id, outputs)

    @contextmanager
    def observe(self, model_name: str, expired: Callable[[], bool] = lambda: False) -> Iterator[None]:
        """Count one request (decoding included) as a success or a failure by status code, and time it.

        Args:
            model_name: the requested model (counted under UNKNOWN_MODEL when it is not served).
            expired: whether the call's deadline has passed; a request cancelled while running (the client gave
                up, or the deadline ended it) counts as failed with DEADLINE_EXCEEDED if so, else CANCELLED.
        """
        label = model_name if self.store.has(model_name) else UNKNOWN_MODEL
        series = self.metrics.series(label)
        series.requests.inc()
        start = time.perf_counter()
        try:
            yield
        except ServingError as e:
            self.metrics.failures.labels(label, e.code.name).inc()
            raise
        except Exception:
            self.metrics.failures.labels(label, "INTERNAL").inc()
            raise
        except asyncio.CancelledError:  # a BaseException, so not caught above
            self.metrics.failures.labels(label, "DEADLINE_EXCEEDED" if expired() else "CANCELLED").inc()
            raise
        series.successes.inc()
        series.latency.observe(time.perf_counter() - start)


def _check_finite(request: InferRequest, outputs: dict[str, np.ndarray]) -> None:
    """Refuse an answer that is not a number: finite inputs far outside the model's range (e.g. 3e38 km/h) overflow
    inside it, and NaN forecasts served as OK would be taken for real ones."""
    for name, array in outputs.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            names = ", ".join(f"'{n}'" for n in request.inputs)
            subject = f"input {names} is" if len(request.inputs) == 1 else f"inputs {names} are"
            raise InvalidInput(
                f"{subject} out of the model's range: output '{name}' came out NaN or Inf; "
                "send real units in their usual range (e.g. km/h, trips)."
            )
