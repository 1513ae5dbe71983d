"""Hubs as files: a directory or fsspec URI holding hub.json plus Parquet or CSV tables.

Layout: ``hub.json``; static tables as ``sensors.parquet``; temporal tables partitioned by the city's local
date as ``traffic/date=2026-03-02/part-0.parquet``. CSV hubs hold one ``<table>.csv`` per table. Readers also
accept a single ``traffic.parquet`` and partitioned CSV, so hand-made hubs work.
"""

import io
import json
import posixpath
import uuid
from pathlib import Path
from typing import Literal

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cityagent.errors import HubError
from cityagent.hub.hub import MANIFEST, Hub, HubMeta
from cityagent.hub.schema import TABLES
from cityagent.hub.timestamps import infer_meta, parse_ts_column


def _fs(location: str | Path) -> tuple[fsspec.AbstractFileSystem, str]:
    try:
        return fsspec.core.url_to_fs(str(location))
    except (ImportError, ValueError) as e:
        raise HubError(f"cannot open hub location {location!s}: {e}; use a directory or a supported URI") from e


def _table_files(fs: fsspec.AbstractFileSystem, root: str, name: str) -> list[str]:
    files = [f"{root}/{name}.{ext}" for ext in ("parquet", "csv") if fs.isfile(f"{root}/{name}.{ext}")]
    if fs.isdir(f"{root}/{name}"):
        found = [f for f in fs.find(f"{root}/{name}") if f.endswith((".parquet", ".csv"))]
        files += sorted(found)  # partitions sort by date=YYYY-MM-DD, keeping time order
    return files


def _read_one(fs: fsspec.AbstractFileSystem, path: str, name: str) -> pd.DataFrame:
    schema = TABLES[name]
    try:
        with fs.open(path, "rb") as fh:
            if path.endswith(".parquet"):
                return pq.read_table(fh).to_pandas()
            ids = {c.name: str for c in schema.columns if c.kind in ("id", "str")}
            df = pd.read_csv(io.BytesIO(fh.read()), dtype=ids, keep_default_na=True)
    except (pa.ArrowInvalid, pd.errors.ParserError, UnicodeDecodeError, OSError) as e:
        raise HubError(f"table {name}: cannot read {path}: {e}; re-export the file or remove it") from e
    if "ts" in df.columns:
        df["ts"] = parse_ts_column(df["ts"])
    return df


def read_file_hub(location: str | Path) -> Hub:
    """Read every table found under ``location``; a location with no hub data is an error."""
    fs, root = _fs(location)
    root = root.rstrip("/")
    if not fs.exists(root):
        raise HubError(
            f"no hub at {location}: the path does not exist; create one with "
            f"`cityagent hub synth --out {location}` or `cityagent hub import`"
        )
    tables = {}
    for name in TABLES:
        files = _table_files(fs, root, name)
        if files:
            parts = [_read_one(fs, f, name) for f in files]
            tables[name] = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    has_manifest = fs.isfile(f"{root}/{MANIFEST}")
    if not tables and not has_manifest:
        raise HubError(
            f"{location} holds no hub data (no {MANIFEST} and no tables such as traffic.parquet, "
            f"traffic/ or demand.csv); point at a hub directory"
        )
    if has_manifest:
        try:
            meta = HubMeta.from_dict(json.loads(fs.cat_file(f"{root}/{MANIFEST}")))
        except (json.JSONDecodeError, TypeError) as e:
            raise HubError(f"{root}/{MANIFEST} is not a valid hub manifest: {e}; fix or delete it") from e
    else:
        meta = infer_meta(tables, name=posixpath.basename(root))
    zone = meta.timezone_problem()
    if zone:
        raise HubError(f"{root}/{MANIFEST}: {zone}")
    for df in tables.values():  # CSV offsets come back as fixed offsets: show them in the city's zone
        if "ts" in df and isinstance(df["ts"].dtype, pd.DatetimeTZDtype):
            df["ts"] = df["ts"].dt.tz_convert(meta.timezone)
    return Hub(tables, meta)


def _write_tables(hub: Hub, fs: fsspec.AbstractFileSystem, root: str, fmt: str) -> None:
    fs.makedirs(root, exist_ok=True)
    fs.pipe_file(f"{root}/{MANIFEST}", json.dumps(hub.meta.to_dict(), indent=2, default=str).encode())
    for name, df in hub.tables.items():
        if fmt == "csv":
            with fs.open(f"{root}/{name}.csv", "wb") as fh:
                fh.write(df.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S%z").encode())
            continue
        if not TABLES[name].temporal or df.empty:
            _write_parquet(fs, f"{root}/{name}.parquet", df)
            continue
        if not isinstance(df["ts"].dtype, pd.DatetimeTZDtype):
            raise HubError(f"table {name}: column ts must be timezone-aware timestamps to partition by date")
        dates = df["ts"].dt.tz_convert(hub.meta.timezone).dt.strftime("%Y-%m-%d")
        for date, part in df.groupby(dates, sort=True):
            _write_parquet(fs, f"{root}/{name}/date={date}/part-0.parquet", part)


def _write_parquet(fs: fsspec.AbstractFileSystem, path: str, df: pd.DataFrame) -> None:
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    with fs.open(path, "wb") as fh:
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), fh, compression="zstd")


def write_file_hub(hub: Hub, location: str | Path, format: Literal["parquet", "csv"] = "parquet") -> str:
    """Write into a temporary sibling, then swap it into place; the old hub survives any failure."""
    if format not in ("parquet", "csv"):
        raise HubError(f"unknown hub format {format!r}; use 'parquet' or 'csv'")
    zone = hub.meta.timezone_problem()
    if zone:  # the manifest would name no zone, and partitioning by local date needs one
        raise HubError(f"cannot write the hub to {location}: its {zone}")
    fs, root = _fs(location)
    root = root.rstrip("/")
    if fs.exists(root) and fs.ls(root) and not fs.isfile(f"{root}/{MANIFEST}"):
        raise HubError(f"{location} exists and is not a hub (no {MANIFEST}); choose an empty or new directory")
    tag = uuid.uuid4().hex[:8]
    parent, base = posixpath.split(root)
    tmp, old = f"{parent}/.{base}.tmp-{tag}", f"{parent}/.{base}.old-{tag}"
    try:
        _write_tables(hub, fs, tmp, format)
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp, recursive=True)
        raise
    replace_dir(fs, tmp, root, old)
    return str(location)


def replace_dir(fs: fsspec.AbstractFileSystem, new: str, target: str, old: str) -> None:
    """Move ``new`` to ``target``; an existing target is moved aside first and removed only afterwards."""
    existed = fs.exists(target)
    if existed:
        fs.mv(target, old, recursive=True)
    try:
        fs.mv(new, target, recursive=True)
    except BaseException:
        if existed:
            fs.mv(old, target, recursive=True)
        raise
    if existed:
        fs.rm(old, recursive=True)
