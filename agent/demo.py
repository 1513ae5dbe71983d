"""`cityagent demo`: the whole system on a fresh machine, narrated as it goes.

Synthesise a small city → train traffic, demand and risk on one local Ray → register each and promote it through
the gate → serve the champions over gRPC → run one agent cycle → show the decisions and where to look next.
"""

import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import typer

from cityagent.agent.console import console
from cityagent.errors import HubError

DOMAINS = ("traffic", "demand", "risk")


@dataclass
class DemoResult:
    """Where the demo left things, and how long it took."""

    hub: Path
    tracking_uri: str
    decisions: object  # pandas.DataFrame of the cycle's decisions
    seconds: float


# Ray's notice that a cluster it starts uses token authentication: the demo's Ray is its own, local and short-lived
RAY_TOKEN_NOTICE = "ray._private.authentication.authentication_token_setup"


def _quiet(ray: bool) -> None:
    """Progress is narrated here; library chatter (Lightning's device banner and tips, MLflow migrations, Ray's start
    lines, progress bars) is not."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("RAY_LOGGER_LEVEL", "error")  # read when Ray is imported; Ray workers inherit it
    # each configures its loggers on import (Lightning sets its level to INFO): quieten them after that
    import lightning.pytorch  # noqa: F401
    import mlflow  # noqa: F401

    if ray:
        import ray as _ray  # noqa: F401

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "mlflow", "alembic", "ray", RAY_TOKEN_NOTICE):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(lightning|torch|mlflow|ray)\b")


def check_replaceable(hub_dir: Path) -> None:
    """Refuse to synthesise over a hub the synthesiser did not write (an imported city, a team's or a listener's
    hub at ``$CITYAGENT_HOME/hub``): the demo replaces its hub, and this one would be lost."""
    manifest = hub_dir / "hub.json"
    if not manifest.is_file():
        if hub_dir.is_dir() and any(hub_dir.iterdir()):
            raise HubError(f"{hub_dir} holds files but no hub.json; the demo would replace them: pass --out NEW_DIR")
        return
    try:
        meta = json.loads(manifest.read_text())
    except ValueError:
        meta = {}
    source = str(meta.get("source", ""))
    from cityagent.hub.hub import SYNTH_SOURCE  # pandas: not at CLI start-up

    if not source.startswith(SYNTH_SOURCE):
        raise HubError(
            f"{hub_dir} holds the hub {meta.get('name', '?')!r} ({source or 'no source'}), not a synthetic city; the "
            "demo would replace it: pass --out NEW_DIR, or set CITYAGENT_HOME to a fresh directory"
        )


def _step(n: int, text: str, t0: float) -> None:
    console.print(f"[bold cyan]{n}/6[/] {text} [dim]({time.perf_counter() - t0:.0f} s)[/]", highlight=False)


def run_demo(
    out: str | None = None,
    sensors: int = 16,
    zones: int = 9,
    days: int = 4,
    seed: int = 0,
    workers: int = 2,
    epochs: int = 2,
    port: int = 0,
) -> DemoResult:
    """Run the main job end to end under ``$CITYAGENT_HOME``.

    Args:
        out: hub directory (default ``$CITYAGENT_HOME/hub``, where training looks for the synthetic city).
        sensors, zones, days, seed: the synthetic city.
        workers: Ray Train workers per model (one local Ray serves all three); 0 trains in-process.
        epochs: training epochs per model.
        port: gRPC port of the demo server (0: any free port).
    """
    from cityagent.agent.agent_config import load_agent_config
    from cityagent.agent.cli_agent import decisions_table, print_cycle, print_outcome
    from cityagent.agent.lock import task_lock
    from cityagent.agent.loop import Agent
    from cityagent.agent.retrain import retrain
    from cityagent.home import home_dir
    from cityagent.hub import read_hub
    from cityagent.hub.synth import synthesize
    from cityagent.hub.validate import validate_hub
    from cityagent.serving.background import ServerThread
    from cityagent.serving.config import ServingConfig
    from cityagent.training.tracking import tracking_uri

    t0 = time.perf_counter()
    _quiet(ray=workers > 0)
    hub_dir = Path(out) if out else home_dir() / "hub"
    check_replaceable(hub_dir)
    team = os.environ.get("MLFLOW_TRACKING_URI")
    # the demo's own store under the home, even where a team server is set: it registers and promotes models
    uri = tracking_uri(f"sqlite:///{home_dir() / 'mlflow.db'}")
    os.environ["MLFLOW_TRACKING_URI"] = uri  # one store for training, the registry and the server's model loads
    console.rule("[bold]cityagent demo[/]")
    if team and team != uri:
        console.print(f"    [dim]MLFLOW_TRACKING_URI={team} is left alone: the demo tracks into {uri}[/]")

    _step(1, f"synthesising a city: {sensors} road sensors, {zones} zones, {days} days of 5-minute data", t0)
    synthesize(hub_dir, sensors=sensors, zones=zones, days=days, seed=seed, progress=False)
    hub = read_hub(hub_dir)
    report = validate_hub(hub)
    if not report.ok:
        raise HubError(f"the synthetic hub at {hub_dir} failed validation: {report.errors[0]}")
    rows = ", ".join(f"{n:,} {name}" for name, n in hub.summary().items())
    console.print(f"    hub at {hub_dir}, valid: {rows}", highlight=False)

    cfg = load_agent_config(overrides={"hub": str(hub_dir), "loop": {"retrain_on_drift": False}})
    overrides = {"train.max_epochs": epochs, "train.workers": workers, "train.patience": max(epochs, 1)}
    where = f"one local Ray, {workers} workers each" if workers else "in-process"
    _step(2, f"training traffic, demand and risk ({epochs} epoch(s), {where}); MLflow at {uri}", t0)
    started = _start_ray(workers)
    names = []
    try:
        for domain in DOMAINS:
            with task_lock(domain):  # a scheduler retraining the same task meanwhile is told it is busy
                result = retrain(domain, cfg, overrides=overrides, actor="cityagent-demo", say=lambda _: None)
            names.append(result.model)
            verdict = "promoted to champion" if result.promoted else "not promoted: " + "; ".join(result.reasons)
            mae = result.scores["challenger"]["mae"]
            console.print(
                f"    {result.model} v{result.challenger}: MAE {mae:.3g} on the newest test windows, {verdict} "
                f"[dim]({time.perf_counter() - t0:.0f} s)[/]",
                highlight=False,
            )
    finally:
        if started:
            import ray

            ray.shutdown()

    models = [f"{name}@champion" for name in names]
    _step(3, f"serving the champions over gRPC (Open Inference Protocol): {', '.join(models)}", t0)
    serving = ServingConfig.model_validate(
        {"port": port, "metrics_port": None, "models": models, "registry": {"poll_interval_s": 0}}
    )
    with ServerThread(serving) as server:
        console.print(f"    listening on {server.address}")
        cfg = load_agent_config(overrides={"hub": str(hub_dir), "serving": {"address": server.address},
                                           "loop": {"retrain_on_drift": False}})  # fmt: skip
        at = f"{hub.table('traffic')['ts'].max():%Y-%m-%d} 08:00"
        _step(4, f"one agent cycle, as if it were {at} (the last day's morning peak): sense → think → act → learn", t0)
        agent = Agent(cfg, say=lambda line: console.print(f"    [yellow]{line}[/]"), after_model=print_outcome)
        cycle = agent.cycle(at=at)
    _step(5, "decisions written to the hub", t0)
    print_cycle(cycle)
    if cycle.decisions.empty:
        console.print(decisions_table(cycle))
    seconds = time.perf_counter() - t0
    _step(6, "where to look next", t0)
    serve = " ".join(f"-m {m}" for m in models)
    lines = [
        f"decisions table:  {hub_dir / 'decisions'}  (read_hub('{hub_dir}').table('decisions'))",
        f"MLflow UI:        mlflow ui --backend-store-uri {uri}",
        "registry:         cityagent models list; cityagent models history traffic-synthetic",
        f"serve:            MLFLOW_TRACKING_URI={uri} cityagent serve {serve}",
        f"agent loop:       cityagent agent run --hub {hub_dir}",
        "retrain:          cityagent retrain --now traffic",
    ]
    # commands to copy: never broken across lines
    console.print("\n".join(f"    {line}" for line in lines), highlight=False, soft_wrap=True)
    console.print(f"[green]done[/] in {seconds:.0f} s", highlight=False)
    return DemoResult(hub_dir, uri, cycle.decisions, seconds)


def _start_ray(workers: int) -> bool:
    """Start one local Ray for all three trainings (each fit reuses it); True when this call started it."""
    if workers == 0:
        return False
    from cityagent.training.ray_cluster import connect

    return connect(None, workers)


def demo(
    out: str = typer.Option(None, help="Where to put the synthetic city hub (default: $CITYAGENT_HOME/hub)."),
    sensors: int = typer.Option(16, help="Road sensors in the synthetic city."),
    zones: int = typer.Option(9, help="Demand zones (a square grid)."),
    days: int = typer.Option(4, help="Days of 5-minute readings."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same city."),
    workers: int = typer.Option(2, help="Ray Train workers per model; 0 trains in-process without Ray."),
    epochs: int = typer.Option(2, help="Training epochs per model."),
    port: int = typer.Option(0, help="gRPC port of the demo's server (0: any free port)."),
) -> None:
    """The main job on a synthetic city: train, register, promote, serve, and run one agent cycle."""
    run_demo(out=out, sensors=sensors, zones=zones, days=days, seed=seed, workers=workers, epochs=epochs, port=port)
