"""Hub long tables → dense ``[T, N, C]`` tensors on the hub's time grid, NaN where a reading is absent."""

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cityagent.errors import ConfigError, HubError
from cityagent.hub.grid import row_major, zone_cells
from cityagent.hub.hub import Hub, HubMeta
from cityagent.hub.schema import table_schema

log = logging.getLogger(__name__)
IMPUTE = ("zero", "ffill", "mean")
CITY_NODE = "city"  # the one node of city-wide tables (weather)


@dataclass
class SeriesTensor:
    """Readings of N nodes over T steps: ``values[t, n, c]`` is channel c of node n at ``ts[t]``."""

    values: np.ndarray  # [T, N, C] float32, NaN = absent
    ts: pd.DatetimeIndex  # [T], regular at the hub step (or the operating slots that exist)
    nodes: list[str]
    channels: list[str]

    def __post_init__(self) -> None:
        want = (len(self.ts), len(self.nodes), len(self.channels))
        if self.values.shape != want:
            raise HubError(f"SeriesTensor values are {self.values.shape} but ts/nodes/channels give {want}")

    @property
    def observed(self) -> np.ndarray:
        """``[T, N, C]`` bool, True where a reading exists."""
        return ~np.isnan(self.values)

    def channel(self, name: str) -> np.ndarray:
        """One channel as ``[T, N]``."""
        if name not in self.channels:
            raise ConfigError(f"no channel {name!r}; channels are {self.channels}")
        return self.values[:, :, self.channels.index(name)]


def time_grid(meta: HubMeta, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """Every step from ``start`` to ``end`` inclusive, in the hub's timezone.

    Hubs with ``extra['slots_per_day']`` (metro operating hours) get only the slots each day has, starting at
    ``extra['first_slot']`` local time; other hubs get a regular grid in absolute time.
    """
    step = meta.step_delta
    start, end = start.tz_convert(meta.timezone), end.tz_convert(meta.timezone)
    spd = meta.extra.get("slots_per_day")
    if not spd:
        return pd.date_range(start, end, freq=step).as_unit("ns")
    first = pd.Timedelta(str(meta.extra.get("first_slot", "00:00")) + ":00")
    days = pd.date_range(start.tz_localize(None).normalize(), end.tz_localize(None).normalize(), freq="D")
    slots = (first + pd.to_timedelta(np.arange(int(spd)) * step.value, unit="ns")).to_numpy()
    local = (days.to_numpy()[:, None] + slots[None, :]).reshape(-1)
    grid = pd.DatetimeIndex(local).tz_localize(meta.timezone).as_unit("ns")  # [days * spd]
    return grid[(grid >= start) & (grid <= end)]


def hub_span(hub: Hub) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last step of :func:`hub_index`, without building the grid between them."""
    spans = [
        hub.table(name)["ts"]
        for name in ("traffic", "demand", "incidents", "weather")
        if hub.has(name) and len(hub.table(name))
    ]
    if not spans:
        raise HubError("the hub has no readings in traffic, demand, incidents or weather; nothing to tensorise")
    first = min(s.min() for s in spans).tz_convert(hub.meta.timezone)
    last = max(s.max() for s in spans).tz_convert(hub.meta.timezone)
    if hub.has("incidents") and len(hub.table("incidents")):  # incident times fall inside a step
        first = first.tz_convert("UTC").floor(hub.meta.step_delta).tz_convert(hub.meta.timezone)
    return first, last


def hub_index(hub: Hub) -> pd.DatetimeIndex:
    """The hub's time grid: every step from the first to the last reading of any temporal table."""
    return time_grid(hub.meta, *hub_span(hub))


def index_between(hub: Hub, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> pd.DatetimeIndex:
    """The steps of :func:`hub_index` with ``start <= step < end``, built for that span alone (a day of a hub that
    holds weeks costs a day's grid, not the weeks')."""
    first, last = hub_span(hub)
    lo = first if start is None else max(first, start.tz_convert(hub.meta.timezone))
    if not hub.meta.extra.get("slots_per_day"):  # a regular grid steps from the hub's first reading: stay on it
        step = hub.meta.step_delta
        lo = first + -((first - lo) // step) * step  # the first step at or after lo (ceiling division)
    if lo > last:
        return time_grid(hub.meta, last, last)[:0]
    grid = time_grid(hub.meta, lo, last)
    return grid if end is None else grid[grid < end.tz_convert(hub.meta.timezone)]


def node_order(hub: Hub, table: str) -> list[str]:
    """The node ids :func:`to_tensor` lays ``table`` out in by default."""
    idcol = table_schema(table).node_column
    if not idcol:
        return [CITY_NODE]
    df = hub.table(table)
    if table == "incidents" and idcol not in df:
        raise HubError("incidents have no cell_id column; assign each incident a zone/cell before tensorising")
    return _node_order(hub, table, df[idcol].astype(str))


def _node_order(hub: Hub, table: str, ids: pd.Series) -> list[str]:
    """Grid cells row by row; other nodes in the static table's order when the hub has one, else sorted ids."""
    schema = table_schema(table)
    if schema.node_table == "zones" and (cells := zone_cells(hub)) is not None:
        return row_major(cells)  # grid models reshape nodes to [rows, cols]: the table's row order must not matter
    if schema.node_table and hub.has(schema.node_table):
        return [str(v) for v in hub.table(schema.node_table)[table_schema(schema.node_table).key[0]]]
    return sorted(str(v) for v in pd.unique(ids))


def check_columns(df: pd.DataFrame, table: str, columns: Sequence[str]) -> None:
    """A HubError unless ``columns`` are numeric columns of ``df`` (table ``table``)."""
    missing = [c for c in columns if c not in df.columns]
    if missing or not columns:
        raise HubError(f"table {table} has no column(s) {missing or '(none asked)'}; it has {list(df.columns)}")
    text = [c for c in columns if not pd.api.types.is_numeric_dtype(df[c])]
    if text:
        raise HubError(f"table {table}: column(s) {text} are not numeric; encode them before tensorising")


def to_tensor(
    hub: Hub,
    table: str,
    columns: Sequence[str],
    nodes: Sequence[str] | None = None,
    impute: str | None = None,
    *,
    index: pd.DatetimeIndex | None = None,
) -> SeriesTensor:
    """Pivot a temporal table to ``[T, N, C]`` float32 without loops over rows.

    Incidents are summed per (cell, step) with 0 where there were none; other tables keep NaN where a reading is
    absent unless ``impute`` asks otherwise.

    Args:
        hub: the hub.
        table: temporal table name (``traffic``, ``demand``, ``incidents``, ``weather``).
        columns: numeric value columns, one channel each.
        nodes: node ids in the wanted order (default: the static table's order); rows of other ids are an error.
        impute: None (keep NaN), ``'zero'``, ``'ffill'`` (per node, along time) or ``'mean'`` (per node mean);
            the number of filled values is logged.
        index: time grid to place rows on (default: ``hub_index(hub)``, the span of all temporal tables).
    """
    if impute not in (None, *IMPUTE):
        raise ConfigError(f"impute={impute!r} is not one of {IMPUTE} (or None to keep missing readings as NaN)")
    schema = table_schema(table)
    if not schema.temporal:
        raise ConfigError(f"{table!r} is not a temporal table; tensors come from traffic, demand, incidents, weather")
    df = hub.table(table)
    check_columns(df, table, columns)
    idcol = schema.node_column
    if table == "incidents" and idcol not in df:
        raise HubError("incidents have no cell_id column; assign each incident a zone/cell before tensorising")
    ids = df[idcol].astype(str) if idcol else pd.Series(CITY_NODE, index=df.index)
    node_list = (
        [str(n) for n in nodes] if nodes is not None else (_node_order(hub, table, ids) if idcol else [CITY_NODE])
    )
    ni = pd.Index(node_list).get_indexer(ids)
    if (ni < 0).any():
        bad = ids.to_numpy()[ni < 0]
        raise HubError(
            f"table {table}: {len(bad)} row(s) belong to {idcol} values outside the node list "
            f"(first {bad[0]!r}); add them to the static table or pass nodes= including them"
        )
    ts = df["ts"].dt.tz_convert(hub.meta.timezone)
    if table == "incidents":  # events happen at any time: count them in the step they fall in
        ts = ts.dt.tz_convert("UTC").dt.floor(hub.meta.step_delta).dt.tz_convert(hub.meta.timezone)
    if df.empty:
        raise HubError(f"table {table} is empty; there is nothing to tensorise")
    index = hub_index(hub) if index is None else index
    ti = index.get_indexer(ts)
    if (ti < 0).any():
        first = ts.to_numpy()[ti < 0][0]
        raise HubError(
            f"table {table}: {int((ti < 0).sum())} timestamp(s) are off the {hub.meta.step} grid "
            f"{index[0]}..{index[-1]} (first {first}); resample the table or fix hub.json step"
        )
    t, n, c = len(index), len(node_list), len(columns)
    vals = df[list(columns)].to_numpy(dtype=np.float64)  # [R, C]
    if table == "incidents":
        out = np.zeros((t, n, c), dtype=np.float64)
        np.add.at(out, (ti, ni), vals)
    else:
        key = ti.astype(np.int64) * n + ni
        uniq, counts = np.unique(key, return_counts=True)
        if (counts > 1).any():
            tt, nn = divmod(int(uniq[counts > 1][0]), n)
            raise HubError(
                f"table {table}: {int((counts > 1).sum())} (node, step) pair(s) have several rows "
                f"(first {node_list[nn]!r} at {index[tt]}); drop or aggregate duplicates first"
            )
        out = np.full((t, n, c), np.nan, dtype=np.float64)
        out[ti, ni] = vals
    values = out.astype(np.float32)
    if impute:
        values = impute_values(values, impute, what=f"{table}.{','.join(columns)}")
    return SeriesTensor(values, index, node_list, list(columns))


def impute_values(values: np.ndarray, how: str, what: str = "values", fit_steps: int | None = None) -> np.ndarray:
    """Fill NaN of a ``[T, N, C]`` array (``'zero'``, ``'ffill'`` along T, per-series ``'mean'``) and log counts.

    ``fit_steps`` limits the ``'mean'`` to the first steps (the training part), so later data cannot leak in.
    """
    gaps = np.isnan(values)
    before = int(gaps.sum())
    if before == 0:
        return values
    if how == "zero":
        out = np.where(gaps, np.float32(0), values)
    elif how == "ffill":
        t = np.arange(values.shape[0]).reshape(-1, *([1] * (values.ndim - 1)))
        last = np.maximum.accumulate(np.where(gaps, 0, t), axis=0)  # [T, N, C] index of last reading
        out = np.take_along_axis(values, last, axis=0)  # leading gaps point at a NaN and stay NaN
    elif how == "mean":
        with warnings.catch_warnings():  # a series with no reading keeps NaN, without a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(values[:fit_steps], axis=0, keepdims=True)  # [1, N, C]
        out = np.where(gaps, mean, values).astype(values.dtype)
    else:
        raise ConfigError(f"impute={how!r} is not one of {IMPUTE}")
    left = int(np.isnan(out).sum())
    log.info("imputed %d of %d missing %s with %s (%d still missing)", before - left, before, what, how, left)
    return out
