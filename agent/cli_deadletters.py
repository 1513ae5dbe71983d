"""`cityagent hub rejected` and `cityagent hub replay`: look at the readings the listener set aside, and try them again.

A dead letter is kept forever in ``<hub>/_rejected/`` (agent/deadletter.py). These two commands are how an operator
finds out why readings are missing (``rejected``) and, once the cause is fixed (a sensor added to ``sensors``, a
disk freed), brings them into the hub (``replay``, agent/replay.py).
"""

from datetime import date
from pathlib import Path

import typer
from rich.table import Table

from cityagent.agent.console import console
from cityagent.errors import ConfigError

LAST = 10  # dead letters `hub rejected` shows one by one, newest first
KIND_HELP = "Only dead letters of this kind (repeatable), e.g. 'unknown id'; default all."
SINCE_HELP = "Only dead letters received on this UTC day (YYYY-MM-DD) or later; default all."


def _kinds(kinds: list[str]) -> list[str] | None:
    from cityagent.agent.deadletter import KINDS

    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ConfigError(f"--kind {unknown[0]!r} is no dead-letter kind; use one of: {', '.join(KINDS)}")
    return kinds or None


def _since(since: str | None) -> date | None:
    if since is None:
        return None
    try:
        return date.fromisoformat(since)
    except ValueError as e:
        raise ConfigError(f"--since {since!r} is not a day; give the UTC day of receipt as YYYY-MM-DD") from e


def _hub(location: Path) -> Path:
    from cityagent.hub.hub import MANIFEST

    if not (location / MANIFEST).is_file():
        raise ConfigError(f"{location} is not a local hub directory with {MANIFEST}; pass the hub `hub listen` writes")
    return location


def rejected(
    location: Path = typer.Argument(..., help="A local hub directory (the one `hub listen --hub` appends to)."),
    kind: list[str] = typer.Option([], "--kind", help=KIND_HELP),
    since: str = typer.Option(None, "--since", help=SINCE_HELP),
    last: int = typer.Option(LAST, "--last", min=0, help="Show this many dead letters one by one, newest first."),
) -> None:
    """Why readings were set aside: dead letters by kind, and the newest ones with their reasons."""
    from cityagent.agent.deadletter import ARCHIVE, FOLDER, summarize

    wanted, first = _kinds(kind), _since(since)
    folder = _hub(location) / FOLDER
    day = "" if first is None else first.isoformat()
    found = summarize(location, None if wanted is None else set(wanted), day, last)
    if not found.total:
        which = (f" of kind {', '.join(wanted)}" if wanted else "") + (f" since {day}" if day else "")
        earlier = f" ({found.replayed} replayed earlier)" if found.replayed else ""
        console.print(f"no dead letters{which} in {folder}{earlier}")
        return
    summary = Table(title=f"dead letters of {location}", title_justify="left")
    for col in ("kind", "readings", "first received", "last received", "newest reason"):
        summary.add_column(col, overflow="fold")
    for k, s in found.kinds.items():
        summary.add_row(k, str(s.count), s.first[:19], s.last[:19], s.reason)
    console.print(summary)
    if found.newest:
        shown = Table(title=f"the newest {len(found.newest)}", title_justify="left")
        for col in ("received", "topic", "index", "kind", "reason"):
            shown.add_column(col, overflow="fold")
        for r in found.newest:
            index = "" if r["index"] is None else str(r["index"])
            shown.add_row(str(r["received"])[:19], str(r["topic"]), index, str(r["kind"]), str(r["reason"]))
        console.print(shown)
    earlier = f"; {found.replayed} replayed earlier (in {FOLDER}/{ARCHIVE}/)" if found.replayed else ""
    console.print(
        f"{found.total} dead letter(s) in {folder}{earlier}. Once the cause is fixed, "
        f"`cityagent hub replay {location}` tries them again.",
        highlight=False,
    )


def replay(
    location: Path = typer.Argument(..., help="A local hub directory (stop `hub listen` on it first)."),
    kind: list[str] = typer.Option([], "--kind", help=KIND_HELP),
    since: str = typer.Option(None, "--since", help=SINCE_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would enter the hub; write nothing."),
    config: Path = typer.Option(
        None, "--config", "-c", help="Agent YAML for mqtt.clock_ahead (default configs/agent.yaml)."
    ),
) -> None:
    """Try the dead letters again against the hub as it is now; those that pass enter it, the rest stay.

    For readings set aside for a cause fixed since: a sensor or zone added to the hub (`unknown id`), a disk that was
    full (`not written`). The rest keep the reason they fail today (a changed one keeps the first under "was"); a
    reading from the future when it was received stays out. Holds the hub's listener lock: stop `hub listen` first
    (with --client-id the broker keeps the readings sent meanwhile).
    """
    from cityagent.agent.agent_config import load_agent_config
    from cityagent.agent.replay import replay as run_replay

    wanted, first = _kinds(kind), _since(since)
    ahead = load_agent_config(config).mqtt.clock_ahead
    report = run_replay(_hub(location), kinds=wanted, since=first, clock_ahead=ahead, dry_run=dry_run)
    if report.finished:
        console.print(
            f"finished a replay a crash interrupted: {report.finished} reading(s) it had appended left the dead letters"
        )
    if report.interrupted:
        console.print(
            "[yellow]an interrupted replay's journal is there:[/] a replay without --dry-run finishes it first"
        )
    verb = "would be appended" if dry_run else "appended"
    tables = ", ".join(f"{t} {n}" for t, n in sorted(report.accepted.items()))
    total = sum(report.accepted.values())
    head = f"{report.letters} dead letter(s) of {location}: [green]{total}[/] reading(s) {verb}"
    head += f" ({tables}) in {len(report.parts)} part file(s)" if total else ""
    still = sum(report.still.values())
    tail = f"; [yellow]{still}[/] still set aside ({dict(report.still)})" if still else ""
    tail += f", {report.changed} of them for another reason than before" if report.changed else ""
    other = f"; {report.skipped} of other kinds left alone" if report.skipped else ""
    torn = (
        f"; {report.unreadable} line(s) that are not dead letters (a torn write?) left as they are"
        if report.unreadable
        else ""
    )
    console.print(head + tail + other + torn, highlight=False)
