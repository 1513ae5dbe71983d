"""`cityagent hub listen` and the `retrain --schedule / --now TASK` plumbing (the retrain job itself is passed in).

Mount with ``hub_app.command()(listen)`` and
``app.command("retrain")(make_retrain_command(lambda cfg: my_job))`` where ``my_job(task: str) -> None``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cityagent.agent.console import console
from cityagent.errors import ConfigError

if TYPE_CHECKING:  # the CLI imports this module at start-up: keep pandas and friends out of that path
    from cityagent.agent.agent_config import AgentConfig


def _stop_on_sigterm(stop: threading.Event) -> None:
    """Kubernetes stops pods with SIGTERM: finish the current batch or run, then exit cleanly."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())


def listen(
    hub: str = typer.Option(..., "--hub", help="Local Parquet hub directory (with hub.json) to append to."),
    mqtt: str = typer.Option(None, "--mqtt", help="Broker URL, mqtt://host:1883 (default: agent config)."),
    topics: list[str] = typer.Option(
        None, "--topic", help="Topic filter (repeatable); a level names the table, e.g. 'city/+/readings'."
    ),
    batch: int = typer.Option(None, help="Readings per validated micro-batch (default: agent config, 500)."),
    flush_seconds: float = typer.Option(None, help="Longest a reading waits before its batch is written, s."),
    max_messages: int = typer.Option(None, help="Stop after this many messages (all received are processed)."),
    duration: float = typer.Option(None, help="Stop after this many seconds (default: run until stopped)."),
    client_id: str = typer.Option(None, help="MQTT client id; makes the session durable at the broker."),
    config: Path = typer.Option(None, "--config", "-c", help="Agent YAML (default configs/agent.yaml)."),
) -> None:
    """Append live MQTT readings to the hub in validated micro-batches; rejected ones go to <hub>/_rejected/."""
    from cityagent.agent.agent_config import load_agent_config
    from cityagent.agent.deadletter import FOLDER
    from cityagent.agent.listen import listen as run_listen

    overrides = {"url": mqtt, "topics": topics or None, "batch": batch, "flush_seconds": flush_seconds}
    overrides |= {"client_id": client_id}
    cfg = load_agent_config(config, {"mqtt": {k: v for k, v in overrides.items() if v is not None}}).mqtt
    stop = threading.Event()
    _stop_on_sigterm(stop)
    console.print(f"listening on {cfg.url} {cfg.topics} → {hub}")
    stats = run_listen(
        hub,
        cfg.url,
        cfg.topics,
        batch=cfg.batch,
        flush_seconds=cfg.flush_seconds,
        max_messages=max_messages,
        duration=duration,
        client_id=cfg.client_id,
        qos=cfg.qos,
        keepalive=cfg.keepalive,
        stop=stop,
        clock_ahead=cfg.clock_ahead,
    )
    console.print(
        f"[green]{stats.accepted}[/] reading(s) appended in {len(stats.files)} file(s) from {stats.messages} "
        f"message(s); [yellow]{stats.rejected}[/] rejected"
        + (f" → {Path(hub) / FOLDER} ({dict(stats.reasons)})" if stats.rejected else "")
    )


def run_retrain(
    cfg: AgentConfig,
    job: Callable[[str], None],
    *,
    schedule: bool = False,
    now: str | None = None,
    max_runs: int | None = None,
    check: Callable[[str, AgentConfig], object] | None = None,
) -> int:
    """Run one task now, or the cron loop; returns the exit code (1 when a ``--now`` run failed).

    Args:
        check: ``check(task, cfg)`` raises a ConfigError for a task that cannot run (an unknown task, a bad
            ``retrain.overrides`` key); it runs before any lock is taken, for every scheduled task at startup.
            Default: build the task's training config with ``retrain_config`` (nothing is trained).
    """
    from cityagent.agent.lock import check_lock_url, resolve_lock_url
    from cityagent.agent.schedule import Scheduler

    if schedule == (now is not None):
        raise ConfigError("pass either --schedule (run the cron loop) or --now TASK (run one retrain now)")
    if check is None:
        from cityagent.agent.retrain import retrain_config as check
    lock_url = resolve_lock_url(cfg.retrain.lock_url)
    sched = Scheduler(cfg.retrain.schedule, job, timezone=cfg.retrain.timezone, lock_url=lock_url)
    # a mistake is refused now, in one line, not at the first cron time; overrides of unscheduled tasks count too
    tasks = [now] if now is not None else [*sched.schedules, *sorted(set(cfg.retrain.overrides) - set(sched.schedules))]
    for task in tasks:
        check(task, cfg)
    if schedule:
        check_lock_url(lock_url)
    styles = {"done": "green", "busy": "yellow", "failed": "red"}
    if now is not None:
        record = sched.run_now(now, raise_config_errors=True)  # e.g. an unknown task: one line, exit 2
        console.print(f"[{styles[record.outcome]}]{record.message}[/]", highlight=False)
        return 1 if record.outcome == "failed" else 0
    _stop_on_sigterm(sched.stop)
    for task in sched.schedules:
        console.print(
            f"{task}: {sched.schedules[task]!r}, next at {sched.next_time(task, sched.now()):%Y-%m-%d %H:%M %Z}"
        )
    sched.run_forever(
        max_runs=max_runs, on_run=lambda r: console.print(f"[{styles[r.outcome]}]{r.message}[/]", highlight=False)
    )
    return 0


def make_retrain_command(job_factory: Callable[[AgentConfig], Callable[[str], None]]) -> Callable[..., None]:
    """A typer command `retrain --schedule | --now TASK` around the job that ``job_factory(cfg)`` builds."""

    def retrain(
        schedule: bool = typer.Option(False, "--schedule", help="Run the cron loop of retrain.schedule until stopped."),
        now: str = typer.Option(None, "--now", metavar="TASK", help="Retrain TASK once now (under its lock)."),
        config: Path = typer.Option(None, "--config", "-c", help="Agent YAML (default configs/agent.yaml)."),
        max_runs: int = typer.Option(None, "--max-runs", hidden=True, help="Stop the loop after this many runs."),
    ) -> None:
        """Retrain on schedule (or once now): train → register challenger → gate → promote, one runner per task."""
        from cityagent.agent.agent_config import load_agent_config

        cfg = load_agent_config(config)
        code = run_retrain(cfg, job_factory(cfg), schedule=schedule, now=now, max_runs=max_runs)
        if code:
            raise typer.Exit(code)

    return retrain
