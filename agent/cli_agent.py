"""`cityagent agent run` (the sense → think → act → learn loop) and the job behind `cityagent retrain`.

Mount with ``app.add_typer(agent_app, name="agent")`` and
``app.command("retrain")(make_retrain_command(retrain_job))``.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.table import Table

from cityagent.agent.console import console

if TYPE_CHECKING:  # the CLI imports this module at start-up: keep pandas, mlflow and torch out of that path
    from collections.abc import Callable

    from cityagent.agent.agent_config import AgentConfig
    from cityagent.agent.loop import CycleReport, ModelOutcome

agent_app = typer.Typer(
    help="The city agent: sense the hub, think with served models, act, learn.", no_args_is_help=True
)
STYLE = {"decided": "green", "unchanged": "dim", "skipped": "yellow", "failed": "red"}


def print_outcome(o: ModelOutcome) -> None:
    """One line per model and cycle, stamped with the local time, whole in a log file (so grep finds it)."""
    from datetime import datetime

    message = o.message.removeprefix(f"{o.model}: ")  # sense's own messages name the model too
    when = f"{datetime.now().astimezone():%Y-%m-%d %H:%M:%S%z}"
    console.print(f"{when} [{STYLE[o.status]}]{o.model}[/]: {o.status}: {message}", highlight=False, soft_wrap=True)


def decisions_table(report: CycleReport, limit: int = 30) -> Table:
    """The cycle's decisions as a rich table (the first ``limit`` rows)."""
    table = Table("kind", "target", "value", "detail", "model", title="decisions this cycle")
    df = report.decisions
    for row in df.head(limit).itertuples():
        table.add_row(row.kind, row.target_id, f"{row.value:.3g}", row.detail, f"{row.model} v{row.model_version}")
    if len(df) > limit:
        table.caption = f"… and {len(df) - limit} more"
    return table


def print_cycle(report: CycleReport) -> None:
    """Decisions, live errors and drift of one cycle."""
    if not report.decisions.empty:
        console.print(decisions_table(report))
    for e in report.live_errors:
        mae = "no actuals" if e.mae is None else f"MAE {e.mae:.3g} over {e.n} targets"
        if e.mae is not None and e.coverage is not None and e.coverage < 1:  # scored after the grace, readings missing
            mae += f", {e.coverage:.0%} of those forecast (the rest never reported)"
        span = f"{e.first_target[:16].replace('T', ' ')}–{e.last_target[11:16]}"  # local wall time, as recorded
        console.print(
            f"  live error of {e.model} v{e.version} forecast for {span}: {mae}", highlight=False, soft_wrap=True
        )
    for model, drift in report.drift.items():  # one line each, whole in a pipe or log, for grep
        if drift.drifted:
            why = "; ".join(drift.reasons + drift.notes)
            console.print(f"  [yellow]drift[/] {model}: {why}", highlight=False, soft_wrap=True)
    for note in report.notes:
        console.print(f"  [dim]{note}[/]", highlight=False, soft_wrap=True)


@agent_app.command("run")
def run(
    once: bool = typer.Option(False, "--once", help="Run one cycle and exit."),
    interval: str = typer.Option(None, help="Time between cycles, e.g. 5min (default: loop.interval)."),
    config: Path = typer.Option(None, "--config", "-c", help="Agent YAML (default configs/agent.yaml)."),
    hub: str = typer.Option(
        None, "--hub", help="Local hub directory (default: the config's hub, else $CITYAGENT_HOME/hub)."
    ),
    server: str = typer.Option(None, "--server", help="host:port of `cityagent serve` (default: serving.address)."),
    at: str = typer.Option(
        None, "--at", help="Replay: anchor every window at this step of the hub, e.g. '2026-03-05 08:00'."
    ),
    no_retrain: bool = typer.Option(False, "--no-retrain", help="Report drift but never start a retrain."),
) -> None:
    """Sense the hub, ask the served models, write decisions to the hub, learn from actuals; every interval."""
    from cityagent.agent.agent_config import load_agent_config
    from cityagent.agent.loop import Agent, parse_at, parse_interval

    if interval is not None:
        parse_interval(interval)  # bad options fail here, in one line, before anything starts
    parse_at(at)
    overrides: dict = {"hub": hub} if hub else {}
    if server:
        overrides["serving"] = {"address": server}
    if no_retrain:
        overrides["loop"] = {"retrain_on_drift": False}
    cfg = load_agent_config(config, overrides)
    say = lambda line: console.print(f"  [yellow]{line}[/]", highlight=False, soft_wrap=True)  # noqa: E731
    agent = Agent(cfg, say=say, after_model=print_outcome)  # print_outcome reports skips and failures: once
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())  # Kubernetes: finish the cycle, then exit
    console.print(f"agent: hub {agent.hub_dir}, serving {cfg.serving.address}, models {list(cfg.loop.models.values())}")
    reports = agent.run(once=once, interval=interval, at=at, stop=stop, on_cycle=print_cycle)
    failed = [o for r in reports for o in r.outcomes if o.status == "failed"]
    if once and failed:
        raise typer.Exit(1)


@agent_app.command("status")
def status(
    since: str = typer.Option("1d", help="Forecasts scored in this past span, e.g. 6h, 1d, 7d."),
) -> None:
    """How the served models do live: MAE and RMSE of their scored forecasts per model version and hub."""
    import pandas as pd

    from cityagent import durations
    from cityagent.agent.live_error import agent_dir, live_summary

    try:
        span = durations.duration(since, "--since")
    except ValueError:
        raise typer.BadParameter(f"'{since}' is not a duration such as 6h or 1d", param_hint="'--since'") from None
    df = live_summary(pd.Timestamp.now(tz="UTC") - span)
    if df.empty:
        console.print(
            f"no forecast scored in the last {since} ({agent_dir() / 'live_error.jsonl'}); the agent scores a "
            "forecast once its targets have readings (`cityagent agent run`)"
        )
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    table.title = f"live error, forecasts scored in the last {since}"
    for header in ("model", "ver", "hub", "fcsts", "targets", "MAE", "RMSE", "cover", "last target"):
        right = header not in ("model", "hub", "last target")
        table.add_column(header, overflow="fold", justify="right" if right else "left", no_wrap=header == "model")
    for r in df.itertuples():
        coverage = "-" if pd.isna(r.coverage) else f"{r.coverage:.0%}"
        last = str(r.last_target)[:16].replace("T", " ")
        cells = (r.model, f"v{r.version}", r.hub, str(r.forecasts), str(r.targets), f"{r.mae:.3g}", f"{r.rmse:.3g}")
        table.add_row(*cells, coverage, last)
    console.print(table)


def retrain_job(cfg: AgentConfig) -> Callable[[str], None]:
    """The job factory ``make_retrain_command`` takes: one retrain per call, progress printed."""
    from cityagent.agent.retrain import retrain

    def job(task: str) -> None:
        retrain(task, cfg, say=lambda line: console.print(line, highlight=False))

    return job
