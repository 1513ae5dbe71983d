"""One live reading: which hub table its MQTT topic names, and its JSON checked field by field.

A payload is a JSON object (one reading) or a JSON array of objects. Anything that does not fit the table's
contract raises ``Rejected`` with the reason, so the listener can set it aside instead of dropping it.
"""

import json
import math
from typing import Any

import pandas as pd

from cityagent.hub.schema import TABLES, Column, TableSchema
from cityagent.hub.validate import NON_NEGATIVE, RANGES

# tables a sensor can stream into; decisions are the agent's own output
STREAMABLE = tuple(name for name, t in TABLES.items() if t.temporal and name != "decisions")


class Rejected(Exception):
    """A reading that cannot enter the hub; ``str(e)`` is the reason written to the dead-letter file.

    ``kind`` groups reasons for counting: ``malformed`` (not a reading of the table) or ``unknown topic``.
    """

    def __init__(self, reason: str, kind: str = "malformed") -> None:
        super().__init__(reason)
        self.kind = kind


def table_for_topic(topic: str) -> str:
    """The first topic level that names a streamable hub table: ``city/traffic/readings`` → ``traffic``."""
    for level in topic.split("/"):
        if level in STREAMABLE:
            return level
    raise Rejected(
        f"topic {topic!r} names no hub table; put one of {', '.join(STREAMABLE)} in a topic level",
        "unknown topic",
    )


def parse_payload(payload: bytes) -> list[Any]:
    """The readings in one message: a JSON object is one reading, a JSON array is several."""
    try:
        data = json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as e:
        raise Rejected(f"payload is not UTF-8 JSON: {e}") from e
    if isinstance(data, list):
        if not data:
            raise Rejected("payload is an empty JSON array")
        return data
    return [data]


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a reading value")


def to_record(table: str, obj: Any, timezone: str) -> dict[str, Any]:
    """Check one reading against ``table``'s columns and return it with ``ts`` in the hub's timezone."""
    schema = TABLES[table]
    if not isinstance(obj, dict):
        raise Rejected(f"a {table} reading must be a JSON object, not {type(obj).__name__}")
    unknown = sorted(set(obj) - set(schema.names))
    if unknown:
        raise Rejected(f"unknown field(s) {unknown}; {table} readings hold only {schema.names}")
    missing = [c for c in schema.required if c not in obj]
    if missing:
        raise Rejected(f"missing field(s) {missing}; {table} readings need {schema.required}")
    if schema.one_of and not any(all(c in obj for c in group) for group in schema.one_of):
        raise Rejected(f"{table} readings need one of the field groups {list(schema.one_of)}")
    return {name: _value(schema, schema.column(name), value, timezone) for name, value in obj.items()}


def _value(schema: TableSchema, col: Column, value: Any, timezone: str) -> Any:
    if value is None:
        raise Rejected(f"{col.name} is null; send the field with a value or leave it out")
    if col.kind in ("id", "str"):
        if not isinstance(value, str) or not value:
            raise Rejected(f"{col.name} must be a non-empty string, got {value!r}")
        return value
    if col.kind == "ts":
        return _timestamp(value, timezone)
    if col.kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise Rejected(f"{col.name} must be a finite number, got {value!r}")
        if col.name in NON_NEGATIVE and value < 0:
            raise Rejected(f"{col.name} must not be negative, got {value!r}")
        lo, hi = RANGES.get(col.name, (-math.inf, math.inf))
        if not lo <= value <= hi:
            raise Rejected(f"{col.name} must lie in [{lo}, {hi}], got {value!r}")
        return float(value)
    raise Rejected(f"{schema.name}.{col.name} ({col.kind}) cannot be streamed")


def _timestamp(value: Any, timezone: str) -> pd.Timestamp:
    if not isinstance(value, str):
        raise Rejected(f"ts must be an ISO-8601 string with a UTC offset, got {value!r}")
    try:
        ts = pd.Timestamp(value)
    except ValueError as e:
        raise Rejected(f"ts {value!r} is not ISO-8601: {e}") from e
    if ts.tzinfo is None:
        raise Rejected(f"ts {value!r} has no UTC offset; send e.g. 2026-03-02T08:05:00+08:00")
    return ts.tz_convert(timezone).as_unit("ns")
