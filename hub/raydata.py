"""Windows for hubs larger than memory: Ray Data reads the partitioned Parquet and windows each node's series.

No process holds the whole hub: Ray reads the ``<table>/date=YYYY-MM-DD/*.parquet`` parts in parallel into its
object store (which spills to disk), groups rows by node (a distributed shuffle) and builds one node's sliding
windows per task.
"""

import json
import posixpath
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from cityagent.errors import ConfigError, HubError
from cityagent.hub.files import LISTINGS
from cityagent.hub.hub import MANIFEST, HubMeta
from cityagent.hub.parts import live_parts
from cityagent.hub.schema import table_schema

if TYPE_CHECKING:  # Ray is imported when windows are asked for
    import ray.data


def _meta(location: str, step: str | None, timezone: str | None) -> HubMeta:
    fs, root = fsspec.core.url_to_fs(location)
    path = posixpath.join(root.rstrip("/"), MANIFEST)
    given = {k: v for k, v in (("step", step), ("timezone", timezone)) if v is not None}
    if fs.isfile(path):  # what the caller passes stands in for a key the manifest lacks
        raw = json.loads(fs.cat_file(path))
        meta = HubMeta.from_dict({**given, **raw} if isinstance(raw, dict) else raw, where=path)
    else:
        meta = HubMeta()
    if not fs.isfile(path) and step is None:
        raise ConfigError(f"{location} has no {MANIFEST}; pass step= (e.g. '5min') and timezone=")
    out = HubMeta(meta.name, step or meta.step, timezone or meta.timezone, meta.source, meta.extra)
    zone = out.timezone_problem()
    if zone:
        raise ConfigError(f"{path if timezone is None else 'timezone='}: {zone}")
    return out


def _files(location: str, table: str) -> list[str]:
    """The table's live part files (without those a compacted part holds), in date order."""
    fs, root = fsspec.core.url_to_fs(location)
    files = live_parts(fs, sorted(fs.glob(posixpath.join(root.rstrip("/"), table, "date=*", "*.parquet"))))
    if not files:
        raise HubError(f"{location} has no {table}/date=YYYY-MM-DD/*.parquet partitions; write the hub with write_hub")
    return files


def _span(location: str, files: list[str]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last timestamp of a partitioned table, from its first and last day partitions only."""
    fs, _ = fsspec.core.url_to_fs(location)
    ends = []
    for path, pick in ((files[0], "min"), (files[-1], "max")):
        with fs.open(path, "rb") as fh:
            ts = pq.read_table(fh, columns=["ts"]).column("ts").to_pandas()
        ends.append(getattr(ts, pick)())
    return pd.Timestamp(ends[0]), pd.Timestamp(ends[1])


def _missing(e: BaseException) -> FileNotFoundError | None:
    """The FileNotFoundError behind ``e``: raised here, or in a Ray task (``RayTaskError.cause``), or chained."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [e]
    while stack:
        err = stack.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        cause = getattr(err, "cause", None)  # a RayTaskError is also an instance of its cause's type
        if isinstance(err, FileNotFoundError) and not isinstance(cause, BaseException):
            return err
        stack += [cause, err.__cause__, err.__context__]
    return None


def _read(
    location: str, table: str, columns: list[str], read_options: dict[str, Any]
) -> tuple["ray.data.Dataset", pd.Timestamp, pd.Timestamp]:
    """``columns`` of the table's live parts, read into Ray's object store, and the table's first and last ts.

    Read now rather than lazily: a compaction merges a date's parts and deletes them, so a lazy read of an older
    listing would fail whenever it ran (and a consumer runs it again each epoch). A part that goes before the read
    is done sends it back to a new listing, as ``read_hub`` does.
    """
    import ray  # heavy: only when asked for

    protocol = fsspec.core.split_protocol(location)[0]
    for attempt in range(LISTINGS):
        try:
            files = _files(location, table)
            lo, hi = _span(location, files)  # reads two day partitions, not the hub
            paths = [f"{protocol}://{f}" if protocol else f for f in files]  # a compacted part's parts are not read
            ds = ray.data.read_parquet(paths, partitioning=None, **read_options).select_columns(columns)
            return ds.materialize(), lo, hi
        except Exception as e:
            gone = _missing(e)
            if gone is None:
                raise
            if attempt == LISTINGS - 1:
                raise HubError(
                    f"table {table}: {gone.filename or gone} vanished while Ray read the table, {LISTINGS} times in "
                    "a row; something keeps rewriting the hub's files (only compaction may), stop it and read again"
                ) from e
    raise AssertionError("unreachable")


def slot_numbers(ts: pd.Series, meta: HubMeta, origin: pd.Timestamp) -> np.ndarray:
    """Slot of each timestamp counted from ``origin``; operating-hour hubs skip closed hours. Off-grid → HubError."""
    both = pd.DatetimeIndex(pd.to_datetime(pd.concat([pd.Series([origin]), pd.Series(ts)]), utc=True))
    step = meta.step_delta.value
    spd = meta.extra.get("slots_per_day")
    if spd:  # days × slots in local wall time
        ns = both.tz_convert(meta.timezone).tz_localize(None).as_unit("ns").asi8
        day, tod = np.divmod(ns, pd.Timedelta("1D").value)
        k, rem = np.divmod(tod - pd.Timedelta(str(meta.extra.get("first_slot", "00:00")) + ":00").value, step)
        off = (rem != 0) | (k < 0) | (k >= int(spd))
        slots = day * int(spd) + k
    else:  # absolute time, as to_tensor's grid
        slots, rem = np.divmod(both.as_unit("ns").asi8 - both.as_unit("ns").asi8[0], step)
        off = rem != 0
    if off[1:].any():
        raise HubError(
            f"{int(off[1:].sum())} timestamp(s) are off the {meta.step} grid "
            f"(first {both[1:][off[1:]][0]}); resample the table or fix hub.json step"
        )
    return slots[1:] - slots[0]


def _node_windows(
    df: pd.DataFrame,
    *,
    node_col: str,
    column: str,
    meta: HubMeta,
    origin: pd.Timestamp,
    n_steps: int,
    input_len: int,
    horizon: int,
    skip_missing_inputs: bool,
) -> dict[str, np.ndarray]:
    """One node's windows: ``x [S, input_len]``, ``y [S, horizon]`` (missing targets 0), ``mask``, anchors."""
    k = slot_numbers(df["ts"], meta, origin)
    series = np.full(n_steps, np.nan, dtype=np.float32)  # [T] this node on the global grid
    series[k] = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float32)
    anchors = np.arange(input_len - 1, n_steps - horizon, dtype=np.int64)
    x = series[anchors[:, None] + np.arange(1 - input_len, 1)[None, :]]  # [S, input_len]
    y = series[anchors[:, None] + np.arange(1, horizon + 1)[None, :]]  # [S, horizon]
    if skip_missing_inputs:
        ok = ~np.isnan(x).any(axis=1)
        anchors, x, y = anchors[ok], x[ok], y[ok]
    mask = ~np.isnan(y)
    node = str(df[node_col].iloc[0])
    return {
        "node": np.full(len(anchors), node, dtype=object),
        "anchor": anchors,
        "x": x,
        "y": np.where(mask, y, 0).astype(np.float32),
        "mask": mask,
    }


def ray_windows(
    location: str | Path,
    table: str,
    column: str,
    input_len: int,
    horizon: int,
    step: str | None = None,
    timezone: str | None = None,
    skip_missing_inputs: bool = True,
    **read_options: Any,
) -> "ray.data.Dataset":
    """A ``ray.data.Dataset`` of per-node sliding windows (columns node, anchor, x, y, mask).

    The table is read when this is called, from one listing of its parts (a compaction running beside it cannot
    pull files from under the dataset later); the windowing runs when the dataset is consumed.
    Anchors index the hub-wide grid from the table's first to its last step (so they match ``to_tensor``).

    Args:
        location: hub directory or URI holding ``hub.json`` and ``<table>/date=*/part-0.parquet``.
        table: temporal table with a node column (``traffic`` or ``demand``).
        column: value column.
        input_len: input steps t-input_len+1..t.
        horizon: target steps t+1..t+horizon.
        step, timezone: override (or supply, without hub.json) the manifest's step and timezone.
        skip_missing_inputs: leave out windows whose inputs miss a reading (targets are masked instead).
        read_options: passed to ``ray.data.read_parquet``.
    """
    node_col = table_schema(table).node_column
    if node_col is None:
        raise ConfigError(f"table {table!r} has no node column; per-node windows need traffic or demand")
    meta = _meta(str(location), step, timezone)
    ds, lo, hi = _read(str(location), table, [node_col, "ts", column], read_options)
    origin = pd.Timestamp(lo)
    n_steps = int(slot_numbers(pd.Series([hi]), meta, origin)[0]) + 1
    if n_steps < input_len + horizon:
        raise HubError(f"{table} spans {n_steps} steps but one window needs {input_len + horizon}")
    fn_args = dict(
        node_col=node_col,
        column=column,
        meta=meta,
        origin=origin,
        n_steps=n_steps,
        input_len=input_len,
        horizon=horizon,
        skip_missing_inputs=skip_missing_inputs,
    )
    return ds.groupby(node_col).map_groups(_node_windows, fn_kwargs=fn_args, batch_format="pandas")
