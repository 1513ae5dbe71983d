"""`cityagent hub listen` and the `retrain --schedule / --now TASK` plumbing (the retrain job itself is passed in).

Mount with ``hub_app.command()(listen)`` and
``app.command("retrain")(make_retrain_command(lambda cfg: my_job))`` where ``my_job(task: str) -> None``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import typer

from cityagent.agent.console import console
from cityagent.errors import ConfigError

if TYPE_CHECKING:  # the CLI imports this module at start-up: keep pandas and friends out of that path
    from cityagent.agent.agent_config import AgentConfig, MqttConfig
    from cityagent.agent.schedule import RunRecord


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[list[int]]:
    """SIGTERM (Kubernetes) and SIGINT (Ctrl-C) both set ``stop``: the current batch is finished and written.

    Yields the signals received; the previous handlers come back on exit.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield received
        return

    def handle(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# the listen flags that override an mqtt.* key of the agent config, so a bad value blames the flag typed
_LISTEN_FLAGS = {
    "url": "--mqtt",
    "topics": "--topic",
    "batch": "--batch",
    "flush_seconds": "--flush-seconds",
    "client_id": "--client-id",
}


def _mqtt_with_flags(cfg: MqttConfig, given: dict[str, object]) -> MqttConfig:
    """``cfg`` (already checked as the file's) with the flags' values, each checked and blamed on its flag."""
    from pydantic import ValidationError

    try:
        return type(cfg).model_validate({**cfg.model_dump(), **given})
    except ValidationError as e:
        err = e.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        flag = _LISTEN_FLAGS.get(key, f"mqtt.{key}")
        why = err["msg"].removeprefix("Value error, ")
        shown = "" if key == "topics" else f" {given.get(key)!r}"  # a topic error already quotes the filter
        raise ConfigError(f"{flag}{shown}: {why}; fix that option") from e


def _redacted(url: str) -> str:
    """The broker URL without its password, for the console."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


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
    """Append live MQTT readings to the hub in validated micro-batches; rejected ones go to <hub>/_rejected/.

    Ctrl-C or SIGTERM: the current batch is finished and written, the summary printed (Ctrl-C then exits 130).
    """
    from cityagent.agent.agent_config import load_agent_config
    from cityagent.agent.deadletter import FOLDER
    from cityagent.agent.listen import listen as run_listen

    flags = {"url": mqtt, "topics": topics or None, "batch": batch, "flush_seconds": flush_seconds}
    flags |= {"client_id": client_id}
    cfg = _mqtt_with_flags(load_agent_config(config).mqtt, {k: v for k, v in flags.items() if v is not None})
    stop = threading.Event()
    with _stop_on_signals(stop) as received:
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
            # only now is the subscription granted: a reading published from here on is ours
            on_ready=lambda: console.print(f"listening on {_redacted(cfg.url)} {cfg.topics} → {hub}"),
            say=lambda line: console.print(
                f"{datetime.now().astimezone():%Y-%m-%d %H:%M:%S %z} {line}", soft_wrap=True
            ),
        )
    console.print(
        f"[green]{stats.accepted}[/] reading(s) appended in {stats.files} file(s) from {stats.messages} "
        f"message(s); [yellow]{stats.rejected}[/] rejected"
        + (f" → {Path(hub) / FOLDER} ({dict(stats.reasons)})" if stats.rejected else "")
    )
    if signal.SIGINT in received:
        raise typer.Exit(130)  # the shell's convention for Ctrl-C, after the batch was written


def run_retrain(
    cfg: AgentConfig,
    job: Callable[[str], None],
    *,
    schedule: bool = False,
    now: str | None = None,
    max_runs: int | None = None,
    check: Callable[[str, AgentConfig], object] | None = None,
) -> int:
    """Run one task now, or the cron loop; returns the exit code: 0, 1 when a ``--now`` run failed, 143 when SIGTERM
    interrupted a run (it is reported as failed, promotes nothing and releases its lock; the loop stops too).

    Args:
        check: ``check(task, cfg)`` raises a ConfigError for a task that cannot run (an unknown task, a bad
            ``retrain.overrides`` key); it runs before any lock is taken, for every scheduled task at startup.
            Default: build the task's training config with ``retrain_config`` (nothing is trained).
    """
    from cityagent.agent.lock import check_lock_url, resolve_lock_url
    from cityagent.agent.schedule import SIGTERM_EXIT, Scheduler

    if schedule == (now is not None):
        raise ConfigError("pass either --schedule (run the cron loop) or --now TASK (run one retrain now)")
    if check is None:
        from cityagent.agent.retrain import retrain_config as check
    lock_url = resolve_lock_url(cfg.retrain.lock_url)
    sched = Scheduler(cfg.retrain.schedule, job, timezone=cfg.retrain.timezone, lock_url=lock_url)
    with sched.handling_sigterm():  # Kubernetes and cron stop with SIGTERM: the run in flight must not pass as done
        # a mistake is refused now, in one line, not at the first cron time; overrides of unscheduled tasks count too
        tasks = (
            [now] if now is not None else [*sched.schedules, *sorted(set(cfg.retrain.overrides) - set(sched.schedules))]
        )
        for task in tasks:
            check(task, cfg)
        if now is not None:
            record = sched.run_now(now, raise_config_errors=True)  # e.g. an unknown task: one line, exit 2
            _print_run(record)
            return SIGTERM_EXIT if record.interrupted else 1 if record.outcome == "failed" else 0
        check_lock_url(lock_url)
        for task in sched.schedules:
            console.print(
                f"{task}: {sched.schedules[task]!r}, next at {sched.next_time(task, sched.now()):%Y-%m-%d %H:%M %Z}"
            )
        records = sched.run_forever(max_runs=max_runs, on_run=_print_run)
    if sched.sigterm.is_set():
        console.print("SIGTERM: the retrain loop stopped", highlight=False)
    return SIGTERM_EXIT if any(r.interrupted for r in records) else 0


def _print_run(record: RunRecord) -> None:
    styles = {"done": "green", "busy": "yellow", "failed": "red"}
    console.print(f"[{styles[record.outcome]}]{record.message}[/]", highlight=False)


def make_retrain_command(job_factory: Callable[[AgentConfig], Callable[[str], None]]) -> Callable[..., None]:
    """A typer command `retrain --schedule | --now TASK` around the job that ``job_factory(cfg)`` builds."""

    def retrain(
        schedule: bool = typer.Option(False, "--schedule", help="Run the cron loop of retrain.schedule until stopped."),
        now: str = typer.Option(None, "--now", metavar="TASK", help="Retrain TASK once now (under its lock)."),
        config: Path = typer.Option(None, "--config", "-c", help="Agent YAML (default configs/agent.yaml)."),
        max_runs: int = typer.Option(None, "--max-runs", hidden=True, help="Stop the loop after this many runs."),
    ) -> None:
        """Retrain on schedule (or once now): train → register challenger → gate → promote, one runner per task.

        Exits 1 when a --now run failed, 2 on a bad task or config, 143 when SIGTERM interrupted a run.
        """
        from cityagent.agent.agent_config import load_agent_config

        cfg = load_agent_config(config)
        code = run_retrain(cfg, job_factory(cfg), schedule=schedule, now=now, max_runs=max_runs)
        if code:
            raise typer.Exit(code)

    return retrain
