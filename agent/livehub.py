"""What a Parquet hub directory already holds, as much as the listener needs to check new readings.

The manifest, the sensor/zone ids, each streamed table's columns and grid origin, and per local date the keys
already written and each node's newest timestamp. Dates are loaded on first use (key columns only), so a hub of
many days costs only the days that readings arrive for, and only the two dates used last stay loaded between
batches.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from cityagent.errors import HubError
from cityagent.hub.files import LISTINGS, bad_manifest
from cityagent.hub.hub import MANIFEST, HubMeta
from cityagent.hub.parts import live_parts
from cityagent.hub.schema import TABLES

# dates whose keys stay in memory per table: today's and yesterday's (readings straddle midnight); an older date is
# read again from its parts when a reading for it comes, so a listener running for weeks holds two days, not weeks
KEEP_DATES = 2
_FS = fsspec.filesystem("file")


@dataclass
class DateKeys:
    """One table's readings of one local date: each node's timestamps (UTC ns), a sorted int64 array per node.

    8 bytes a reading: a set of (node, ts) tuples took ~200, half a GiB a day for a 10,000-sensor city's traffic.
    """

    ts: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, nodes: np.ndarray, ts_ns: np.ndarray) -> None:
        ts_ns = np.asarray(ts_ns, dtype=np.int64)
        for node, at in pd.Series(ts_ns).groupby(nodes, sort=False).indices.items():
            old = self.ts.get(node)
            if len(at) == 1 and old is not None and ts_ns[at[0]] > old[-1]:  # the listener's case, kept cheap
                self.ts[node] = np.append(old, ts_ns[at[0]])
            elif old is None:
                self.ts[node] = np.unique(ts_ns[at])
            else:
                self.ts[node] = np.union1d(old, ts_ns[at])

    def has(self, node: str, t: int) -> bool:
        """Whether ``node`` already has a reading at ``t``."""
        known = self.ts.get(node)
        if known is None:
            return False
        i = int(np.searchsorted(known, t))
        return i < len(known) and int(known[i]) == t

    def newest(self, node: str) -> int | None:
        """``node``'s newest timestamp of the date, or None without one."""
        known = self.ts.get(node)
        return int(known[-1]) if known is not None and len(known) else None


def utc_ns(ts: pd.Series) -> np.ndarray:
    """Timezone-aware timestamps as int64 nanoseconds since the epoch."""
    return pd.DatetimeIndex(ts).as_unit("ns").asi8


def local_ns(ts: pd.Series, timezone: str) -> np.ndarray:
    """Wall-clock time in ``timezone`` as int64 nanoseconds (what the step grid is laid on)."""
    return pd.DatetimeIndex(ts).tz_convert(timezone).tz_localize(None).as_unit("ns").asi8


class LiveHub:
    """A local Parquet hub the listener appends to.

    Args:
        root: the hub directory (with ``hub.json``, as ``write_hub`` or ``hub synth`` writes it).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        manifest = self.root / MANIFEST
        if "://" in str(root) or not manifest.is_file():
            raise HubError(
                f"{root} is not a local hub directory with {MANIFEST}; create one with `cityagent hub synth` "
                "or `cityagent hub copy SRC DIR`, then listen into it"
            )
        try:
            self.meta = HubMeta.from_dict(json.loads(manifest.read_text()))
        except (json.JSONDecodeError, TypeError) as e:
            raise bad_manifest(manifest, e) from e
        zone = self.meta.timezone_problem()  # before a reading is laid on the step grid in that zone
        if zone:
            raise HubError(f"{manifest}: {zone}")
        self.step_ns = self.meta.step_delta.value
        self._static: dict[str, pd.DataFrame] = {}
        self._columns: dict[str, list[str]] = {}
        self._origin: dict[str, int] = {}
        self._dates: dict[tuple[str, str], DateKeys] = {}

    def static(self, name: str) -> pd.DataFrame:
        """The static table ``name`` (sensors, zones) as stored; an error when the hub has none."""
        if name not in self._static:
            path = self.root / f"{name}.parquet"
            if not path.is_file():
                raise HubError(
                    f"hub {self.root} has no {name}.parquet, so readings cannot be checked against known "
                    f"{name}; add the {name} table first"
                )
            self._static[name] = pq.read_table(path).to_pandas()
        return self._static[name]

    def node_ids(self, table: str) -> set[str] | None:
        """Ids a reading of ``table`` may name, or None for tables without a node column (weather)."""
        schema = TABLES[table]
        if not schema.node_table:
            return None
        if schema.node_column not in schema.required and not (self.root / f"{schema.node_table}.parquet").is_file():
            return None  # optional ids (incidents' cell_id) are checked only where the hub can check them
        return set(self.static(schema.node_table)[TABLES[schema.node_table].key[0]].astype(str))

    def parts(self, table: str, date: str | None = None) -> list[Path]:
        """The table's Parquet parts (of one local date), in read order."""
        for ext in ("parquet", "csv"):
            if (self.root / f"{table}.{ext}").is_file():
                raise HubError(
                    f"hub {self.root} keeps {table} in one file {table}.{ext}; the listener appends date "
                    f"partitions, so rewrite the hub with `cityagent hub copy {self.root} NEW_DIR` first"
                )
        folder = self.root / table / (f"date={date}" if date else "")
        found = sorted(str(p) for p in folder.rglob("*.parquet")) if folder.is_dir() else []
        return [Path(p) for p in live_parts(_FS, found)]  # without the parts a compacted part holds

    def columns(self, table: str) -> list[str] | None:
        """The columns the table's existing parts hold (None while it has none)."""
        if table not in self._columns:
            parts = self.parts(table)
            if not parts:
                return None
            self._columns[table] = list(pq.read_schema(parts[0]).names)
        return self._columns[table]

    def set_columns(self, table: str, columns: list[str]) -> None:
        self._columns.setdefault(table, columns)

    def origin(self, table: str) -> int:
        """Local wall-clock ns of the table's grid origin: its first reading, else local midnight."""
        if table not in self._origin:
            parts = self.parts(table)
            first = pq.read_table(parts[0], columns=["ts"]).to_pandas()["ts"] if parts else None
            has = first is not None and len(first) > 0
            self._origin[table] = int(local_ns(first, self.meta.timezone).min()) if has else 0
        return self._origin[table]

    def date_keys(self, table: str, date: str) -> DateKeys:
        """Keys already written for ``table`` on local ``date`` (``YYYY-MM-DD``), loaded on first use."""
        found = self._dates.pop((table, date), None)  # put back last: the dict runs from least to most recently used
        for attempt in range(LISTINGS):
            if found is not None:
                break
            try:
                found = self._read_keys(table, date)
            except FileNotFoundError as e:  # `hub compact` merged a part since the listing: list again
                if attempt == LISTINGS - 1:
                    raise HubError(f"{table} parts of {date} keep vanishing while read ({e}); read again") from e
        self._dates[(table, date)] = found
        return found

    def _read_keys(self, table: str, date: str) -> DateKeys:
        found = DateKeys()
        node = TABLES[table].node_column if TABLES[table].node_column in TABLES[table].required else None
        for part in self.parts(table, date):
            cols = ["ts"] + ([node] if node else [])
            df = pq.read_table(part, columns=cols).to_pandas()
            nodes = df[node].astype(str).to_numpy() if node else np.full(len(df), "")
            found.add(nodes, utc_ns(df["ts"]))
        return found

    def forget_old_dates(self, table: str) -> None:
        """Keep only the ``KEEP_DATES`` dates of ``table`` used last; called between batches, so one batch spanning
        more dates than that is checked without reading a date's parts twice."""
        held = [key for key in self._dates if key[0] == table]
        for key in held[: max(0, len(held) - KEEP_DATES)]:
            del self._dates[key]
