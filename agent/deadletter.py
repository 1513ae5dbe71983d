"""The dead-letter file: readings that could not enter the hub, with the raw payload and the reason.

``<hub>/_rejected/<YYYY-MM-DD>.jsonl`` (UTC date of receipt), one JSON object per line. The hub reader ignores the
folder (``_rejected`` is no table name), so rejected readings never mix with valid ones but are never lost.
"""

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

FOLDER = "_rejected"


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
            self.counts[r.kind] += 1
        for day, lines in by_day.items():
            with open(folder / f"{day}.jsonl", "a", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def read_rejections(hub_dir: str | Path) -> list[dict]:
    """Every dead-letter line of a hub, oldest file first (for tests, notebooks and `hub listen` summaries)."""
    folder = Path(hub_dir) / FOLDER
    rows = []
    for path in sorted(folder.glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return rows
