"""`cityagent serve`: answer predictions over gRPC (Open Inference Protocol v2) from ONNX models."""

import logging
from pathlib import Path

import typer

DEFAULT_CONFIG = Path("configs/serving.yaml")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
MODEL_HELP = (
    "Model to serve (repeatable): NAME@ALIAS from the MLflow registry, models:/NAME/VERSION, PATH.onnx or "
    "NAME=PATH.onnx. Default: the config's models."
)


def serve(
    models: list[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    host: str = typer.Option(None, help="Bind address (config default 127.0.0.1; 0.0.0.0 exposes it)."),
    port: int = typer.Option(None, help="gRPC port (config default 8001; 0 = any free port)."),
    config: Path = typer.Option(None, "--config", "-c", help=f"Serving YAML (default {DEFAULT_CONFIG} if present)."),
    metrics_port: int = typer.Option(None, help="Prometheus /metrics port (config default 8002)."),
    no_metrics: bool = typer.Option(False, "--no-metrics", help="Do not expose Prometheus metrics."),
    poll_interval: float = typer.Option(None, help="Seconds between registry alias polls (0 = never)."),
    tls_cert: Path = typer.Option(None, help="Server certificate (PEM); with --tls-key turns on TLS."),
    tls_key: Path = typer.Option(None, help="Server private key (PEM)."),
    tls_client_ca: Path = typer.Option(None, help="CA (PEM) whose client certificates are required (mutual TLS)."),
    token_file: Path = typer.Option(None, help="File holding the bearer token clients must send; turns auth on."),
    auth: bool = typer.Option(
        None, "--auth/--no-auth", help="Require 'authorization: Bearer <token>' (token from $CITYAGENT_SERVING_TOKEN)."
    ),
    log_level: str = typer.Option("info", help=f"Log level: {', '.join(LOG_LEVELS)}."),
) -> None:
    """Serve ONNX models with ONNX Runtime: dynamic batching, hot swap on alias moves, health, metrics, TLS, auth."""
    import asyncio

    from cityagent.serving.config import load_serving_config
    from cityagent.serving.server import serve_forever

    if log_level.lower() not in LOG_LEVELS:
        raise typer.BadParameter(
            f"'{log_level}' is not a log level; use one of {', '.join(LOG_LEVELS)}.", param_hint="'--log-level'"
        )
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config is None and DEFAULT_CONFIG.is_file():
        config = DEFAULT_CONFIG
    overrides = {
        "host": host,
        "port": port,
        "models": list(models) if models else None,
        "metrics_port": metrics_port,
        "registry": {"poll_interval_s": poll_interval},
        "tls": {"cert": tls_cert, "key": tls_key, "client_ca": tls_client_ca},
        "auth": {"enabled": True if token_file is not None else auth, "token_file": token_file},
    }
    cfg = load_serving_config(config, overrides)
    if no_metrics:
        cfg = cfg.model_copy(update={"metrics_port": None})
    asyncio.run(serve_forever(cfg))
