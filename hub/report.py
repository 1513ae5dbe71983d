"""A validation report: issues with a level, where they are, and what to do."""

from dataclasses import dataclass, field
from typing import Literal

Level = Literal["error", "warning"]


@dataclass(frozen=True)
class Issue:
    """One finding. ``row`` is the 0-based position of the first offending row in the table as read (partitions
    in date order, SQL ordered by key); ``at`` names that row by its key, e.g. ``sensor_id='s3', ts=...``.

    Printed, the row is 1-based and excludes the header: ``data row 99`` is line 100 of a one-file CSV table.
    """

    level: Level
    table: str
    message: str
    column: str | None = None
    row: int | None = None
    count: int | None = None
    at: str | None = None
    line_of: str | None = "if CSV"  # after "line N": the CSV file the table came from; None where lines mean nothing

    @property
    def location(self) -> str:
        """``table.column at data row N (line N+1 of traffic.csv; key=value, ...)``, as much of it as is known."""
        where = self.table + (f".{self.column}" if self.column else "")
        if self.row is not None:
            notes = [f"line {self.row + 2} {self.line_of}"] if self.line_of else []
            notes += [self.at] if self.at else []
            where += f" at data row {self.row + 1}" + (f" ({'; '.join(notes)})" if notes else "")
        return where

    def __str__(self) -> str:
        return f"{self.level.upper()} {self.location}: {self.message}"


@dataclass
class Report:
    """Everything validation found, plus a per-table summary (rows, ids, time range)."""

    issues: list[Issue] = field(default_factory=list)
    tables: dict[str, dict[str, object]] = field(default_factory=dict)
    line_of: dict[str, str | None] = field(default_factory=dict)  # table -> Issue.line_of, where the source is known

    def add(self, level: Level, table: str, message: str, **where: object) -> None:
        if table in self.line_of:
            where.setdefault("line_of", self.line_of[table])
        self.issues.append(Issue(level, table, message, **where))  # type: ignore[arg-type]

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def find(self, table: str, fragment: str) -> list[Issue]:
        """Issues of ``table`` whose message contains ``fragment`` (handy in tests and notebooks)."""
        return [i for i in self.issues if i.table == table and fragment in i.message]

    def __str__(self) -> str:
        lines = [str(i) for i in self.issues]
        lines.append(f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        return "\n".join(lines)
