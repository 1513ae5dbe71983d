"""`cityagent hub rejected` and `cityagent hub replay`: look at the readings the listener set aside, and try them again.

A dead letter is kept forever in ``<hub>/_rejected/`` (agent/deadletter.py). These two commands are how an operator
finds out why readings are missing (``rejected``) and, once the cause is fixed (a sensor added to ``sensors``, a
disk freed), brings them into the hub (``replay``, agent/replay.py).
"""

from collections import Counter
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
    from cityagent.agent.deadletter import FOLDER, read_rejections
    from cityagent.agent.replay import ARCHIVE

    wanted, first = _kinds(kind), _since(since)
    folder = _hub(location) / FOLDER
    day = "" if first is None else first.isoformat()
    rows = [
        r
        for r in read_rejections(location)
        if (wanted is None or r.get("kind") in wanted) and str(r.get("received", ""))[:10] >= day
    ]
    replayed = sum(1 for p in (folder / ARCHIVE).glob("*.jsonl") for line in p.read_bytes().split(b"\n") if line)
    if not rows:
        which = (f" of kind {', '.join(wanted)}" if wanted else "") + (f" since {day}" if day else "")
        console.print(f"no dead letters{which} in {folder}" + (f" ({replayed} replayed earlier)" if replayed else ""))
        return
    counts = Counter(str(r.get("kind")) for r in rows)
    summary = Table(title=f"dead letters of {location}", title_justify="left")
    for col in ("kind", "readings", "first received", "last received", "newest reason"):
        summary.add_column(col, overflow="fold")
    for k, n in counts.most_common():
        mine = [r for r in rows if str(r.get("kind")) == k]
        stamps = sorted(str(r.get("received", "")) for r in mine)
        newest = max(mine, key=lambda r: str(r.get("received", "")))
        summary.add_row(k, str(n), stamps[0][:19], stamps[-1][:19], str(newest.get("reason", "")))
    console.print(summary)
    if last:
        shown = Table(title=f"the newest {min(last, len(rows))}", title_justify="left")
        for col in ("received", "topic", "index", "kind", "reason"):
            shown.add_column(col, overflow="fold")
        for r in sorted(rows, key=lambda r: str(r.get("received", "")), reverse=True)[:last]:
            index = "" if r.get("index") is None else str(r["index"])
            shown.add_row(
                str(r.get("received", ""))[:19], str(r.get("topic")), index, str(r.get("kind")), r.get("reason")
            )
        console.print(shown)
    earlier = f"; {replayed} replayed earlier (in {FOLDER}/{ARCHIVE}/)" if replayed else ""
    console.print(
        f"{len(rows)} dead letter(s) in {folder}{earlier}. Once the cause is fixed, "
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
