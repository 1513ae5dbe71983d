"""Replaying dead letters: readings the listener set aside get one more try against the hub as it is now.

A reading is often set aside for something fixed later: a sensor that streamed before it was added to ``sensors``
(``unknown id``), a hub that could not take readings (``not written``), a batch that failed hub validation
(``invalid batch``). ``replay`` runs each dead letter through the listener's own checks again (``readings`` and
``microbatch.check_batch``) and appends the readings that pass. The rest stay in their file with the reason they fail
now; a reason that changed keeps the first one under ``was``. ``future`` is judged against the time a reading was
received, not the clock at the replay: a reading ahead of its sensor's clock does not become right by waiting.

The files are replayed one by one, oldest first (one per UTC day of receipt), so memory holds one day's letters, and
a letter is known by a digest of its line rather than the line itself (each carries its whole message).

Exactly once across a crash. For each file, the part names are drawn first and written, with the dead letters each
part takes, to ``_rejected/.replay.json``; then the parts are written; then the file is rewritten without those
letters (to a temporary name, fsynced, renamed) after they are appended to ``_rejected/replayed/<file>`` with the part
that holds them; then the journal goes. A replay that finds a journal finishes it first: a letter whose part is in
the hub (on disk, or held by a compacted part) leaves the dead letters, the others stay. A replay holds the hub's
listener lock, so it never runs beside ``hub listen``, which appends to the same files.
"""

import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd

from cityagent import durations
from cityagent.agent.compact import compact_due
from cityagent.agent.deadletter import ARCHIVE, FOLDER
from cityagent.agent.durable import (
    append_lines,
    parse_line,
    read_lines,
    sync_dir,
    why,
    write_advice,
    write_atomic,
    write_problem,
)
from cityagent.agent.livehub import LiveHub
from cityagent.agent.lock import ListenerBusy, listen_lock
from cityagent.agent.microbatch import Checked, check_batch, remember, write_checked
from cityagent.agent.partfiles import uuid7
from cityagent.agent.readings import Rejected, parse_payload, table_for_topic, to_record
from cityagent.errors import CityAgentError, HubError
from cityagent.hub.files import LISTINGS
from cityagent.hub.parts import covered, is_compacted

log = logging.getLogger(__name__)
JOURNAL = ".replay.json"  # in _rejected/: the parts a replay is writing and the dead letters each one takes
Key = tuple[str, str]  # (dead-letter file name, digest of the line): what identifies a letter across a crash


@dataclass
class ReplayReport:
    """What a replay did (or, with ``dry_run``, would do)."""

    letters: int = 0  # dead letters looked at (of the kinds asked for)
    accepted: Counter = field(default_factory=Counter)  # table -> readings appended
    parts: list[str] = field(default_factory=list)  # part files written, relative to the hub
    still: Counter = field(default_factory=Counter)  # kind -> readings still set aside
    changed: int = 0  # readings still set aside, for another reason than before
    skipped: int = 0  # dead letters of other kinds, left alone
    unreadable: int = 0  # lines that are not whole dead letters (a torn write), left as they are
    finished: int = 0  # readings an interrupted replay had appended, taken out of the dead letters now
    interrupted: bool = False  # a dry run found an interrupted replay, which a real one finishes first
    dry_run: bool = False


@dataclass
class _Letter:
    """One line of a dead-letter file, known by a digest of its bytes: a year of letters is not held in memory."""

    file: Path
    digest: str
    was: tuple[str, str]  # (kind, reason) as written


@dataclass
class _Item:
    """One reading of a dead letter: the letter's own (``index``), or each of a whole array payload set aside."""

    letter: _Letter
    index: int | None
    table: str | None = None
    record: dict[str, Any] | None = None
    verdict: tuple[str, str] | None = None  # (kind, reason) while it cannot enter
    part: str | None = None  # where it goes, relative to the hub


@dataclass
class _Outcome:
    """What becomes of one letter: which of its readings entered (and where), and the verdict on the others."""

    indices: list[int | None]
    parts: dict[int | None, str] = field(default_factory=dict)
    verdicts: dict[int | None, tuple[str, str]] = field(default_factory=dict)
    was: tuple[str, str] | None = None


def replay(
    hub: str | Path,
    *,
    kinds: Iterable[str] | None = None,
    since: date | None = None,
    clock_ahead: str | None = None,
    dry_run: bool = False,
) -> ReplayReport:
    """Append the dead letters of ``hub`` that now pass the listener's checks; the rest stay with today's reason.

    Args:
        hub: local Parquet hub directory (with ``hub.json``) whose ``_rejected/`` folder to replay.
        kinds: only dead letters of these kinds (``unknown id``, ``not written``, ...); default all.
        since: only dead letters received on this UTC day or later (their file's name); default all.
        clock_ahead: how far past its receipt time a reading may lie (the listener's ``mqtt.clock_ahead``, a
            duration such as ``'10min'``; default one hub step).
        dry_run: decide, write nothing.

    Raises:
        CityAgentError: a listener runs on the hub (stop it first), the hub or its ``_rejected/`` folder cannot be
            written, or an interrupted replay's journal cannot be read.
    """
    live = LiveHub(hub)
    folder = live.root / FOLDER
    report = ReplayReport(dry_run=dry_run)
    ahead = live.meta.step_delta if clock_ahead is None else durations.duration(clock_ahead, "mqtt.clock_ahead")
    if not folder.is_dir():
        return report
    if not dry_run:
        for place in (live.root, folder, folder / ARCHIVE):
            problem = write_problem(place)
            if problem is not None:
                raise CityAgentError(
                    f"cannot replay into hub {live.root}: cannot write to {place}: {why(problem)}; "
                    f"{write_advice(problem)}, then replay again"
                )
    wanted = None if kinds is None else set(kinds)
    first = "" if since is None else since.isoformat()
    if dry_run:  # reads only: no lock, so it also answers on a read-only hub or beside a listener
        report.interrupted = (folder / JOURNAL).exists()
        _replay(live, report, wanted, first, ahead)
        return report
    try:
        with listen_lock(live.root):
            if (folder / JOURNAL).exists():
                report.finished = _finish_journal(live)
            _replay(live, report, wanted, first, ahead)
    except ListenerBusy as e:
        h = e.holder
        who = f" (pid {h.pid} on {h.host} since {h.since.isoformat(timespec='seconds')})" if h else ""
        raise CityAgentError(
            f"cannot replay into hub {live.root}: a listener appends to it{who}; stop it (with --client-id the broker "
            "keeps the readings sent meanwhile), replay, then start it again"
        ) from e
    return report


def _replay(live: LiveHub, report: ReplayReport, kinds: set[str] | None, first: str, ahead: pd.Timedelta) -> None:
    """One dead-letter file (a UTC day of receipt) after another, oldest first: memory holds one day's letters."""
    written: dict[str, set[str]] = {}
    for path in sorted(p for p in (live.root / FOLDER).glob("*.jsonl") if p.stem >= first):
        for table, dates in _replay_file(live, path, report, kinds, ahead).items():
            written.setdefault(table, set()).update(dates)
    for table, dates in written.items():  # as the listener does after appending
        compact_due(live.root, table, sorted(dates))


def _replay_file(
    live: LiveHub, path: Path, report: ReplayReport, kinds: set[str] | None, ahead: pd.Timedelta
) -> dict[str, list[str]]:
    items: list[_Item] = []
    parsed: dict[tuple[str, str], Any] = {}  # an array payload is in every letter of its readings: parse it once
    for letter, data in _letters(path, report):
        if kinds is not None and letter.was[0] not in kinds:
            report.skipped += 1
            continue
        report.letters += 1
        items += _items(letter, data, live.meta.timezone, ahead, parsed)
    checks: dict[str, tuple[Checked, list[_Item]]] = {}
    for table in sorted({i.table for i in items if i.verdict is None and i.table}):
        waiting = [i for i in items if i.verdict is None and i.table == table]
        checked = check_batch(live, table, [i.record for i in waiting])  # type: ignore[misc]
        for pos, verdict in checked.result.rejected.items():
            waiting[pos].verdict = verdict
        checks[table] = (checked, waiting)
    names = {(t, d): uuid7() for t, (c, _) in checks.items() for d in c.dates()}
    for table, (checked, waiting) in checks.items():
        for pos, ts in checked.frame["ts"].items() if len(checked.frame) else ():
            item = waiting[int(pos)]
            item.part = f"{table}/date={ts:%Y-%m-%d}/part-{names[table, f'{ts:%Y-%m-%d}']}.parquet"
            report.accepted[table] += 1
    for item in items:
        if item.part is None:
            report.still[item.verdict[0]] += 1  # type: ignore[index]
            report.changed += item.verdict != item.letter.was
    parts = sorted({i.part for i in items if i.part})
    report.parts += parts
    if report.dry_run:  # the next file's letters are judged as if these had been written
        for table, (checked, _) in checks.items():
            remember(live, table, checked)
        return {}
    changes = {k: group for k, group in _outcomes(items).items() if _changes(group)}
    if not changes:
        return {}
    journal = live.root / FOLDER / JOURNAL
    if parts:  # the parts' names and their letters, on disk before any part is
        _write_synced(journal, json.dumps(_journal(items)).encode())
    for table, (checked, _) in checks.items():
        write_checked(live, table, checked, {d: n for (t, d), n in names.items() if t == table})
    _apply(live, changes)
    journal.unlink(missing_ok=True)
    sync_dir(journal.parent)
    return {table: checked.dates() for table, (checked, _) in checks.items()}


def _letters(path: Path, report: ReplayReport) -> Iterator[tuple[_Letter, dict[str, Any]]]:
    for number, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        data = parse_line(path, number, line)
        if data is None or not isinstance(data.get("topic"), str) or "payload" not in data:
            report.unreadable += 1  # a torn write: left where it is, for a person to look at
            continue
        yield _Letter(path, _digest(line), _was(data)), data


def _digest(line: bytes) -> str:
    return hashlib.blake2b(line, digest_size=16).hexdigest()


def _lines(path: Path) -> list[bytes]:
    """The file's lines split at newlines only: a JSON string may hold U+2028, which ``str.splitlines`` splits at."""
    lines = path.read_bytes().split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    return lines


def _was(data: dict[str, Any]) -> tuple[str, str]:
    return (str(data.get("kind", "malformed")), str(data.get("reason", "")))


def _payload(data: dict[str, Any]) -> bytes:
    text = data["payload"]
    if not isinstance(text, str):
        raise Rejected("the dead letter's payload is not text")
    if data.get("encoding", "utf-8") == "hex":
        try:
            return bytes.fromhex(text)
        except ValueError as e:
            raise Rejected(f"the dead letter's hex payload does not decode: {e}") from e
    return text.encode("utf-8")


def _items(
    letter: _Letter, data: dict[str, Any], timezone: str, ahead: pd.Timedelta, parsed: dict[tuple[str, str], Any]
) -> list[_Item]:
    """The letter's readings, each parsed again; one that fails carries its verdict."""
    index = data.get("index")
    try:
        table, objs = table_for_topic(data["topic"]), _parsed(data, parsed)
        received = pd.Timestamp(str(data.get("received")))
        if received.tzinfo is None:
            raise ValueError("no UTC offset")
    except Rejected as e:
        return [_Item(letter, index, verdict=(e.kind, str(e)))]
    except ValueError as e:
        why_ = f"the dead letter's received time {data.get('received')!r} is not an ISO time with an offset ({e})"
        return [_Item(letter, index, verdict=("malformed", why_))]
    if index is not None:
        if not isinstance(index, int) or not 0 <= index < len(objs):
            why_ = f"the dead letter's index {index!r} is not a position in its payload of {len(objs)} reading(s)"
            return [_Item(letter, index, verdict=("malformed", why_))]
        picks: list[tuple[int | None, Any]] = [(index, objs[index])]
    else:  # a whole message was set aside: each of its readings is judged on its own now
        picks = list(enumerate(objs)) if len(objs) > 1 else [(None, objs[0])]
    out = []
    for i, obj in picks:
        item = _Item(letter, i, table)
        try:
            item.record = to_record(table, obj, timezone)
        except Rejected as e:
            item.verdict = (e.kind, str(e))
        else:
            if "ts" in item.record and item.record["ts"] > received + ahead:
                item.verdict = ("future", _future(item.record["ts"], received, ahead))
        out.append(item)
    return out


def _parsed(data: dict[str, Any], memo: dict[tuple[str, str], Any]) -> list[Any]:
    key = (str(data.get("encoding", "utf-8")), str(data["payload"]))
    if key not in memo:
        try:
            memo[key] = parse_payload(_payload(data))
        except Rejected as e:
            memo[key] = e
    if isinstance(memo[key], Rejected):
        raise memo[key]
    return memo[key]


def _future(ts: pd.Timestamp, received: pd.Timestamp, ahead: pd.Timedelta) -> str:
    return (
        f"ts {ts.isoformat()} lay in the future when it was received ({received.isoformat(timespec='seconds')}, "
        f"allowing {ahead.total_seconds() / 60:g} min); a sensor clock or UTC offset gone wrong, so it stays out"
    )


def _outcomes(items: list[_Item]) -> dict[Key, list[_Outcome]]:
    """Per letter (several identical lines: one outcome each, in file order), what became of its readings."""
    by_letter: dict[int, _Outcome] = {}
    keyed: dict[Key, list[_Outcome]] = {}
    for item in items:
        outcome = by_letter.get(id(item.letter))
        if outcome is None:
            outcome = by_letter[id(item.letter)] = _Outcome([], was=item.letter.was)
            keyed.setdefault((item.letter.file.name, item.letter.digest), []).append(outcome)
        outcome.indices.append(item.index)
        if item.part is not None:
            outcome.parts[item.index] = item.part
        elif item.verdict is not None:
            outcome.verdicts[item.index] = item.verdict
    return keyed


def _changes(outcomes: list[_Outcome]) -> bool:
    return any(o.parts or any(v != o.was for v in o.verdicts.values()) for o in outcomes)


def _journal(items: list[_Item]) -> dict[str, Any]:
    letters: dict[int, dict[str, Any]] = {}
    for item in items:
        entry = letters.setdefault(
            id(item.letter), {"file": item.letter.file.name, "digest": item.letter.digest, "indices": [], "parts": {}}
        )
        entry["indices"].append(item.index)
        if item.part is not None:
            entry["parts"][json.dumps(item.index)] = item.part  # JSON keys are text: null or the position
    entries = [e for e in letters.values() if e["parts"]]
    return {"created": datetime.now(UTC).isoformat(), "letters": entries}


def _finish_journal(live: LiveHub) -> int:
    """Finish a replay a crash interrupted: letters whose part reached the hub leave the dead letters."""
    path = live.root / FOLDER / JOURNAL
    try:
        entries = json.loads(path.read_text())["letters"]
        outcomes: dict[Key, list[_Outcome]] = {}
        for e in entries:
            parts = {json.loads(k): p for k, p in e["parts"].items()}
            outcome = _Outcome(list(e["indices"]), {i: p for i, p in parts.items() if _in_hub(live.root, p)})
            outcomes.setdefault((e["file"], e["digest"]), []).append(outcome)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise CityAgentError(
            f"{path} (an interrupted replay's journal) cannot be read: {err}; the parts it names are "
            f"{_named_parts(path)}: take the dead letters they hold out of {live.root / FOLDER} by hand, then delete "
            "the journal and replay again"
        ) from err
    done = sum(len(o.parts) for group in outcomes.values() for o in group)
    _apply(live, outcomes, resumed=True)
    path.unlink()
    sync_dir(path.parent)
    log.warning("finished a replay a crash interrupted: %d reading(s) it had appended left the dead letters", done)
    return done


def _named_parts(path: Path) -> str:
    found = sorted(set(re.findall(r"[\w=./-]*part-[0-9a-f-]{36}\.parquet", path.read_text(errors="replace"))))
    return ", ".join(found) or "none"


def _in_hub(root: Path, part: str) -> bool:
    """Whether ``part`` is in the hub: as a file, or held by a compacted part of its folder.

    Raises:
        CityAgentError: a compacted part there cannot say what it holds; guessing "not in the hub" would append
            its readings again.
    """
    path = root / part
    fs = fsspec.filesystem("file")
    for _ in range(LISTINGS):
        if path.is_file():
            return True
        try:
            return any(
                is_compacted(str(other)) and path.name in covered(fs, str(other))
                for other in sorted(path.parent.glob("*.parquet"))
            )
        except FileNotFoundError:
            continue  # `hub compact` replaced a compacted part meanwhile: list the folder again
        except HubError as e:
            raise CityAgentError(
                f"cannot tell whether {part}, written by an interrupted replay, reached the hub: {e}; then replay "
                "again to finish it"
            ) from e
    raise CityAgentError(f"cannot tell whether {part} reached the hub: its folder kept changing; replay again")


def _apply(live: LiveHub, outcomes: dict[Key, list[_Outcome]], resumed: bool = False) -> None:
    """Archive the letters that entered, then rewrite each dead-letter file without them (and with new verdicts)."""
    folder = live.root / FOLDER
    stamp = datetime.now(UTC).isoformat()
    for name in sorted({k[0] for k in outcomes}):
        path = folder / name
        if not path.is_file():
            continue
        mine = {k: list(v) for k, v in outcomes.items() if k[0] == name}
        kept: list[bytes] = []
        archived: list[str] = []
        for line in _lines(path):
            queue = mine.get((name, _digest(line)))
            if not queue:
                kept.append(line)  # byte for byte: a torn line, another kind, one judged as before
                continue
            outcome = queue.pop(0)
            data = json.loads(line)
            archived += [
                json.dumps({**data, "index": i, "replayed": stamp, "part": p}, ensure_ascii=False)
                for i, p in outcome.parts.items()
            ]
            kept += _remaining(line, data, outcome)
        if resumed:  # a crash after the archive's append but before this file's rename: do not archive twice
            there = _archived(folder / ARCHIVE / name)
            archived = [a for a in archived if _archive_key(a) not in there]
        if archived:
            (folder / ARCHIVE).mkdir(exist_ok=True)
            append_lines(folder / ARCHIVE / name, archived)
        if kept:
            _write_synced(path, b"".join(k + b"\n" for k in kept))
        else:
            path.unlink()
            sync_dir(folder)


def _remaining(line: bytes, data: dict[str, Any], outcome: _Outcome) -> list[bytes]:
    """The lines a letter leaves behind: itself unchanged, or one per reading still out with today's verdict."""
    was = _was(data)
    left = [i for i in outcome.indices if i not in outcome.parts]
    if not outcome.parts and all(v == was for v in outcome.verdicts.values()):
        return [line]
    out = []
    for i in left:
        kind, reason = outcome.verdicts.get(i, was)
        entry = {**data, "index": i, "kind": kind, "reason": reason}
        if (kind, reason) != was and "was" not in data:
            entry["was"] = {"kind": data.get("kind"), "reason": data.get("reason")}
        out.append(json.dumps(entry, ensure_ascii=False).encode("utf-8"))
    return out


def _archive_key(line: str) -> tuple[Any, ...]:
    d = json.loads(line)
    return (d.get("part"), d.get("index"), d.get("received"), d.get("topic"))


def _archived(path: Path) -> set[tuple[Any, ...]]:
    return {(d.get("part"), d.get("index"), d.get("received"), d.get("topic")) for d in read_lines(path)}


def _write_synced(path: Path, data: bytes) -> None:
    write_atomic(path, lambda fh: fh.write(data))
    sync_dir(path.parent)  # the new file is on disk before the next step relies on it
