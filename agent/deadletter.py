"""The dead-letter file: readings that could not enter the hub, with the raw payload and the reason.

``<hub>/_rejected/<YYYY-MM-DD>.jsonl`` (UTC date of receipt), one JSON object per line. The hub reader ignores the
folder (``_rejected`` is no table name), so rejected readings never mix with valid ones but are never lost.
"""

import heapq
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cityagent.agent.durable import append_lines, read_lines

FOLDER = "_rejected"
ARCHIVE = "replayed"  # _rejected/replayed/<file>: dead letters `hub replay` brought into the hub (agent/replay.py)
# every kind the listener sets a reading aside for (readings.py, microbatch.py, listen.py), as docs/operations.md lists
KINDS = (
    "malformed",
    "unknown topic",
    "columns",
    "unknown id",
    "off grid",
    "future",
    "duplicate",
    "late",
    "invalid batch",
    "not written",
)


@dataclass
class Rejection:
    """One rejected reading: the message it came in, its position in a JSON array, and why."""

    topic: str
    payload: bytes
    reason: str
    received: datetime
    index: int | None = None  # position in a JSON-array payload; None for a whole message
    kind: str = "malformed"  # malformed, unknown topic, columns, unknown id, off grid, duplicate, late, ...

    def to_json(self) -> str:
        try:
            text, encoding = self.payload.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = self.payload.hex(), "hex"
        line = {
            "received": self.received.isoformat(),
            "topic": self.topic,
            "index": self.index,
            "kind": self.kind,
            "reason": self.reason,
            "payload": text,
            "encoding": encoding,
        }
        return json.dumps(line, ensure_ascii=False)


@dataclass
class DeadLetter:
    """Appends rejections under ``<hub>/_rejected/`` and counts them by kind."""

    hub_dir: Path
    counts: Counter = field(default_factory=Counter)

    def write(self, rejections: list[Rejection]) -> None:
        """Append ``rejections`` (flushed and fsynced before returning, so a crash keeps them)."""
        if not rejections:
            return
        folder = Path(self.hub_dir) / FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        by_day: dict[str, list[str]] = {}
        for r in rejections:
            day = r.received.astimezone(UTC).strftime("%Y-%m-%d")
            by_day.setdefault(day, []).append(r.to_json())
        for day, lines in by_day.items():
            append_lines(folder / f"{day}.jsonl", lines)  # on a fresh line: a torn one from a full disk stays alone
        self.counts.update(r.kind for r in rejections)  # counted once written: a failed write raised before this

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def read_rejections(hub_dir: str | Path) -> list[dict]:
    """Every dead-letter line of a hub, oldest file first (for tests, notebooks and `hub listen` summaries)."""
    folder = Path(hub_dir) / FOLDER
    rows = []
    for path in sorted(folder.glob("*.jsonl")):
        rows += list(read_lines(path))  # a torn line (a write cut short) is skipped with a warning
    return rows


@dataclass
class KindSummary:
    """The dead letters of one kind: how many, first and last received, and the newest one's reason."""

    count: int = 0
    first: str = ""
    last: str = ""
    reason: str = ""


@dataclass
class Summary:
    """What `hub rejected` shows: dead letters by kind, the newest few, and how many entered the hub by replay."""

    kinds: dict[str, KindSummary] = field(default_factory=dict)
    newest: list[dict] = field(default_factory=list)  # newest first, without their payloads
    replayed: int = 0

    @property
    def total(self) -> int:
        return sum(k.count for k in self.kinds.values())


def summarize(hub_dir: str | Path, kinds: set[str] | None = None, since: str = "", last: int = 10) -> Summary:
    """Dead letters of ``hub_dir`` received on UTC day ``since`` (YYYY-MM-DD) or later, one file at a time: a long
    backlog is counted, not held (each letter carries its whole message)."""
    folder = Path(hub_dir) / FOLDER
    out = Summary()
    newest: list[tuple[str, int, dict]] = []  # a heap of the newest ``last``; the counter breaks ties in file order
    seen = 0
    for path in sorted(p for p in folder.glob("*.jsonl") if p.stem >= since):  # <UTC day of receipt>.jsonl
        for row in read_lines(path):
            kind, received = str(row.get("kind")), str(row.get("received", ""))
            if (kinds is not None and kind not in kinds) or received[:10] < since:
                continue
            k = out.kinds.setdefault(kind, KindSummary(first=received))
            k.count += 1
            k.first = min(k.first, received)
            if received >= k.last:
                k.last, k.reason = received, str(row.get("reason", ""))
            seen += 1
            shown = {key: row.get(key) for key in ("received", "topic", "index", "kind", "reason")}
            if last > 0:
                (heapq.heappush if len(newest) < last else heapq.heappushpop)(newest, (received, seen, shown))
    out.kinds = dict(sorted(out.kinds.items(), key=lambda kv: -kv[1].count))
    out.newest = [row for _, _, row in sorted(newest, reverse=True)]
    for path in (folder / ARCHIVE).glob("*.jsonl"):
        with open(path, "rb") as fh:
            out.replayed += sum(chunk.count(b"\n") for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""))
    return out
