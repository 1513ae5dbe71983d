"""Check a micro-batch of parsed readings against the hub and append the valid ones as new part files.

Each reading must name a known sensor/zone, sit on the hub's step grid, carry the columns the table already has,
not lie in the future (later than the wall clock plus one step: a sensor clock or UTC offset gone wrong), and be
new: a (node, ts) key already in the hub or earlier in the batch is a duplicate, and a reading older than its
node's newest written reading of that date is late (appending it would put the series out of time order).
What survives is validated once more as a hub with ``validate_hub`` before it is written.
"""

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cityagent.agent.compact import compact_due
from cityagent.agent.livehub import LiveHub, local_ns, utc_ns
from cityagent.agent.partfiles import write_part
from cityagent.hub.hub import Hub
from cityagent.hub.schema import TABLES
from cityagent.hub.timeline import slot_numbers
from cityagent.hub.validate import validate_hub

# tables whose series validation keeps on the step grid and in time order (as validate_hub's timeline check)
ORDERED = ("traffic", "demand", "weather")


@dataclass
class BatchResult:
    """What became of a micro-batch: the part files written and the readings set aside, by input position."""

    written: list[Path] = field(default_factory=list)
    accepted: int = 0
    rejected: dict[int, tuple[str, str]] = field(default_factory=dict)  # position -> (kind, reason)


def append_batch(
    live: LiveHub,
    table: str,
    records: list[dict[str, Any]],
    now: pd.Timestamp | None = None,
    ahead: pd.Timedelta | None = None,
) -> BatchResult:
    """Append the valid ``records`` of ``table`` to the hub; every other record gets a reason in ``rejected``.

    Args:
        live: the hub being appended to.
        table: a temporal table name (``traffic``, ``demand``, ``weather``, ``incidents``).
        records: readings from ``readings.to_record`` (``ts`` already in the hub's timezone).
        now: the wall clock (default: the current time); a reading later than it plus ``ahead`` is ``future``.
            Readings from the past (replays of history) are fine.
        ahead: how far past ``now`` a reading may lie (default: one hub step).
    """
    try:
        result = _append(live, table, records, now, ahead)
    finally:  # between batches, whatever became of this one: a listener running for weeks holds days, not weeks
        live.forget_old_dates(table)
    if result.written:  # its parts are on disk: merging them into a compacted part keeps their rows
        compact_due(live.root, table, [p.parent.name.removeprefix("date=") for p in result.written])
    return result


def _append(
    live: LiveHub, table: str, records: list[dict[str, Any]], now: pd.Timestamp | None, ahead: pd.Timedelta | None
) -> BatchResult:
    checked = check_batch(live, table, records, now, ahead)
    write_checked(live, table, checked)
    return checked.result


@dataclass
class Checked:
    """A micro-batch checked but not yet written: the readings that passed, and what became of the rest."""

    frame: pd.DataFrame  # the readings that passed, indexed by input position, in write order
    columns: list[str]
    result: BatchResult

    def dates(self) -> list[str]:
        """The local dates the readings that passed fall on: one part file each."""
        return sorted(set(self.frame["ts"].dt.strftime("%Y-%m-%d"))) if len(self.frame) else []


def check_batch(
    live: LiveHub,
    table: str,
    records: list[dict[str, Any]],
    now: pd.Timestamp | None = None,
    ahead: pd.Timedelta | None = None,
) -> Checked:
    """Every check of ``append_batch`` without writing: a replay decides what to write before it writes."""
    result = BatchResult()
    schema = TABLES[table]
    if not records:
        return Checked(pd.DataFrame(), [], result)
    ahead = live.meta.step_delta if ahead is None else ahead
    latest = (now if now is not None else pd.Timestamp.now(tz="UTC")) + ahead
    # a table's columns are fixed by its parts on disk, else by the first reading: a mix would leave NaN behind
    columns = live.columns(table) or [c for c in schema.names if c in records[0]]
    ids = live.node_ids(table)
    keep = []
    for i, rec in enumerate(records):
        if set(rec) != set(columns):
            why = f"fields {sorted(rec)} differ from the hub's {table} columns {sorted(columns)}"
            result.rejected[i] = ("columns", why)
        elif ids is not None and schema.node_column in rec and rec[schema.node_column] not in ids:
            why = f"{schema.node_column} {rec[schema.node_column]!r} is not in the hub's {schema.node_table}"
            result.rejected[i] = ("unknown id", f"{why}; add it there first")
        elif "ts" in rec and rec["ts"] > latest:
            result.rejected[i] = ("future", _future(rec["ts"], latest, ahead, live))
        else:
            keep.append(i)
    if not keep:
        return Checked(pd.DataFrame(columns=columns), columns, result)
    df = pd.DataFrame([records[i] for i in keep], columns=columns, index=keep)
    df["ts"] = pd.Series(pd.DatetimeIndex(df["ts"]).tz_convert(live.meta.timezone).as_unit("ns"), index=df.index)
    if table in ORDERED:
        off = _off_grid(live, table, df["ts"])
        for i, ts in zip(df.index[off], df["ts"][off], strict=True):
            result.rejected[int(i)] = ("off grid", f"ts {ts.isoformat()} is off the hub's {live.meta.step} grid")
        df = df[~off]
        df = _check_new(live, table, df, result)
    if df.empty:
        return Checked(df, columns, result)
    tables = {table: df.reset_index(drop=True)}
    if schema.node_table and ids is not None:
        tables[schema.node_table] = live.static(schema.node_table)
    report = validate_hub(Hub(tables, live.meta))
    if not report.ok:
        for i in df.index:
            result.rejected[int(i)] = ("invalid batch", f"batch failed hub validation: {report.errors[0]}")
        return Checked(df.iloc[:0], columns, result)
    return Checked(df, columns, result)


def write_checked(live: LiveHub, table: str, checked: Checked, names: dict[str, uuid.UUID] | None = None) -> list[Path]:
    """Write what ``check_batch`` let through, one part per local date (``names``: the part name per date, chosen
    beforehand by a replay that records them first); returns the parts, also added to ``checked.result``."""
    df = checked.frame
    if df.empty:
        return []
    result = checked.result
    for date, part in _by_date(df):
        name = None if names is None else names[date]
        result.written.append(write_part(live.root / table / f"date={date}", part.reset_index(drop=True), name))
        _known(live, table, date, part)  # date by date: a failed write leaves the keys of what was written
    live.set_columns(table, checked.columns)
    result.accepted = len(df)
    return result.written


def remember(live: LiveHub, table: str, checked: Checked) -> None:
    """Take what ``check_batch`` let through as written, without writing it: a dry run's next batch then sees it."""
    for date, part in _by_date(checked.frame):
        _known(live, table, date, part)
    if len(checked.frame):
        live.set_columns(table, checked.columns)


def _by_date(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    if df.empty:
        return []
    return [(str(d), part) for d, part in df.groupby(df["ts"].dt.strftime("%Y-%m-%d"), sort=True)]


def _known(live: LiveHub, table: str, date: str, part: pd.DataFrame) -> None:
    if table in ORDERED:
        live.date_keys(table, date).add(_nodes(part, table), utc_ns(part["ts"]))


def _future(ts: pd.Timestamp, latest: pd.Timestamp, ahead: pd.Timedelta, live: LiveHub) -> str:
    latest = latest.tz_convert(live.meta.timezone)
    step = ahead == live.meta.step_delta
    margin = f"one {live.meta.step} step" if step else f"mqtt.clock_ahead ({ahead.total_seconds() / 60:g} min)"
    return (
        f"ts {ts.isoformat()} lies in the future: later than the wall clock plus {margin} "
        f"({latest.isoformat(timespec='seconds')}); check the sensor's clock and the UTC offset it sends"
    )


def _nodes(df: pd.DataFrame, table: str) -> np.ndarray:
    col = TABLES[table].node_column
    return df[col].astype(str).to_numpy() if col in TABLES[table].required else np.full(len(df), "")


def _off_grid(live: LiveHub, table: str, ts: pd.Series) -> np.ndarray:
    """Timestamps between grid steps: operating-hour hubs use their slots, others the table's first reading."""
    if live.meta.extra.get("slots_per_day"):
        return np.asarray(slot_numbers(ts, live.meta.step_delta, live.meta)[1])
    return (local_ns(ts, live.meta.timezone) - live.origin(table)) % live.step_ns != 0


def _check_new(live: LiveHub, table: str, df: pd.DataFrame, result: BatchResult) -> pd.DataFrame:
    """Reject duplicates (in the batch or the hub) and late readings; the rest comes back in (node, ts) order."""
    nodes = _nodes(df, table)
    df = df.assign(_node=nodes).sort_values(["_node", "ts"], kind="stable")  # stable: equal keys keep arrival order
    nodes, t_ns = df["_node"].to_numpy(), utc_ns(df["ts"])
    dates = df["ts"].dt.strftime("%Y-%m-%d").to_numpy()
    in_batch = df.duplicated(subset=["_node", "ts"], keep="first").to_numpy()
    keep = np.ones(len(df), dtype=bool)
    for j, (i, node, t, date) in enumerate(zip(df.index, nodes, t_ns, dates, strict=True)):
        known = live.date_keys(table, date)
        last = known.newest(node)
        who = f"{TABLES[table].node_column} {node!r}, ts {df['ts'].iloc[j]}" if node else f"ts {df['ts'].iloc[j]}"
        if in_batch[j]:
            result.rejected[int(i)] = ("duplicate", f"duplicate of a reading earlier in this batch ({who})")
        elif known.has(node, int(t)):
            result.rejected[int(i)] = ("duplicate", f"duplicate of a reading already in the hub ({who})")
        elif last is not None and int(t) < last:
            newest = pd.Timestamp(last, tz="UTC").tz_convert(live.meta.timezone)
            why = f"late reading ({who}): its series already reaches {newest} in the hub"
            result.rejected[int(i)] = ("late", f"{why}; backfill history with `cityagent hub import` instead")
        else:
            continue
        keep[j] = False
    return df[keep].drop(columns="_node")
