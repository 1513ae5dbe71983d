"""ServingConfig: every knob of the prediction service, parsed from configs/serving.yaml at the entry point."""

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cityagent.config_errors import explain, nearest
from cityagent.config_yaml import read_yaml
from cityagent.errors import ConfigError

MAX_MESSAGE_MB = 2047  # gRPC's message-size options are int32 bytes: 2048 MiB would overflow them


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrtConfig(_Strict):
    """ONNX Runtime session options (one session per loaded model version)."""

    intra_op_threads: int = Field(1, ge=0, description="threads inside one operator; 0 = ORT default (all cores)")
    inter_op_threads: int = Field(1, ge=0, description="threads across operators (parallel mode only); 0 = default")
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"
    execution_mode: Literal["sequential", "parallel"] = "sequential"
    providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"], description="in priority order")

    @field_validator("providers")
    @classmethod
    def _available_here(cls, providers: list[str]) -> list[str]:
        """ONNX Runtime only warns about a provider it lacks and runs on CPU: here that is an error at load."""
        import onnxruntime as ort

        known, here = ort.get_all_providers(), ort.get_available_providers()
        if not providers:
            raise ValueError(f"list at least one provider; this machine has {', '.join(here)}")
        for name in providers:
            if name not in known:
                near = nearest(name, known, cutoff=0.7)  # "ExecutionProvider" alone makes names look alike
                hint = f"did you mean {near!r}? " if near else ""
                raise ValueError(f"{name!r} is no ONNX Runtime provider; {hint}this machine has {', '.join(here)}")
            if name not in here:
                raise ValueError(
                    f"{name!r} is not in this machine's onnxruntime build, which has {', '.join(here)}; drop it or "
                    "install the build that has it (onnxruntime-gpu for CUDAExecutionProvider)"
                )
        return providers


class BatchingConfig(_Strict):
    """Dynamic batching of concurrent requests per model."""

    enabled: bool = True
    max_batch_size: int = Field(32, ge=1, description="rows (batch entries) per ORT run")
    max_queue_delay_us: int = Field(0, ge=0, description="how long the first request waits for company, µs")
    max_queue_size: int = Field(256, ge=1, description="requests waiting per model; one more → RESOURCE_EXHAUSTED")
    inline_below_us: int = Field(
        5000,
        ge=0,
        description="a lone client's requests run on the event loop (skipping two thread hand-offs) when the "
        "model's one-request run averages under this, µs; 0 = always queue for the worker threads",
    )


class RegistryConfig(_Strict):
    """Where registry models come from and how often their aliases are re-read."""

    tracking_uri: str | None = Field(
        None, description="default: $MLFLOW_TRACKING_URI or sqlite:///$CITYAGENT_HOME/mlflow.db"
    )
    poll_interval_s: float = Field(
        10.0, ge=0, description="seconds between alias polls (and local file checks); 0 = off"
    )
    smoke_test: bool = Field(
        True, description="run zeros of the declared shape through a new version before serving it"
    )


class TlsConfig(_Strict):
    """Server TLS; a client CA turns on mutual TLS (clients must present a certificate it signed)."""

    cert: Path | None = None
    key: Path | None = None
    client_ca: Path | None = None


class AuthConfig(_Strict):
    """Bearer-token auth via the 'authorization: Bearer <token>' metadata entry."""

    enabled: bool = False
    token_env: str = Field("CITYAGENT_SERVING_TOKEN", description="environment variable holding the token")
    token_file: Path | None = Field(None, description="file holding the token (wins over token_env)")
    open_services: list[str] = Field(default_factory=lambda: ["grpc.health.v1.Health"], description="no token needed")


class KeepaliveConfig(_Strict):
    """What the server accepts of clients' HTTP/2 keepalive pings; a client pinging more often is sent GOAWAY
    ENHANCE_YOUR_CALM "too_many_pings" (gRPC's own default allows one ping per 5 minutes, and none on an idle
    connection, too strict for clients behind NATs or load balancers that drop idle connections)."""

    min_ping_interval_s: float = Field(
        10.0, gt=0, description="shortest interval between a client's pings the server accepts, s"
    )
    permit_without_calls: bool = Field(True, description="accept pings on a connection with no call in progress")


class ServingConfig(_Strict):
    """The whole prediction service.

    Args:
        host: interface to bind; 127.0.0.1 by default so nothing is exposed by accident.
        port: gRPC port (0 = any free port, reported by the server once bound).
        metrics_port: Prometheus port on the same host; None turns metrics off.
        models: model specs, e.g. 'traffic-synthetic@champion' (registry alias), 'models:/name/3', 'path/x.onnx'
            or 'name=path/x.onnx'.
        workers: threads that run ORT batches (all models share them).
        max_message_mb: largest request or response, MiB (at most 2047: gRPC takes the limit in bytes as a
            32-bit int); gRPC refuses a larger message with RESOURCE_EXHAUSTED "message larger than max", which a
            retry does not cure (split the batch or raise this).
        max_stream_in_flight: requests of one ModelStreamInfer stream running at once; the server reads no further
            until one is answered, so gRPC flow control slows a fast stream instead of the queue refusing it.
        grace_s: seconds in-flight requests get at shutdown.
        keepalive: which client keepalive pings the server accepts (`KeepaliveConfig`).
    """

    host: str = "127.0.0.1"
    port: int = Field(8001, ge=0, le=65535)
    metrics_port: int | None = Field(8002, ge=0, le=65535)
    models: list[str] = Field(default_factory=list)
    workers: int = Field(2, ge=1)
    max_message_mb: int = Field(64, ge=1, le=MAX_MESSAGE_MB)
    max_stream_in_flight: int = Field(32, ge=1)
    grace_s: float = Field(5.0, ge=0)
    ort: OrtConfig = Field(default_factory=OrtConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    tls: TlsConfig = Field(default_factory=TlsConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    keepalive: KeepaliveConfig = Field(default_factory=KeepaliveConfig)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_serving_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ServingConfig:
    """Read a serving YAML (or the defaults when path is None) and apply nested overrides.

    Args:
        path: YAML file; its top level is ServingConfig's fields (or one `serving:` key holding them).
        overrides: nested dict applied on top, e.g. {"port": 0, "tls": {"cert": "..."}}; None values are skipped.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"serving config {p} does not exist; pass an existing YAML file or leave it out.")
        raw = read_yaml(p, "serving config") or {}
        if not isinstance(raw, dict):
            raise ConfigError(
                f"serving config {p} must be a mapping of ServingConfig fields, not {type(raw).__name__}."
            )
        if set(raw) == {"serving"}:
            raw = raw["serving"] or {}
    raw = _merge(raw, _drop_none(overrides or {}))
    try:
        return ServingConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"serving config {path or '(defaults)'}: {explain(e, ServingConfig)}") from e


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _drop_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}
