"""Hubs as files: a directory or fsspec URI holding hub.json plus Parquet or CSV tables.

Layout: ``hub.json``; static tables as ``sensors.parquet``; temporal tables partitioned by the city's local
date as ``traffic/date=2026-03-02/part-0.parquet``. CSV hubs hold one ``<table>.csv`` per table. Readers also
accept a single ``traffic.parquet`` and partitioned CSV, so hand-made hubs work.
"""

import io
import json
import logging
import posixpath
import re
import uuid
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Literal

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cityagent.errors import HubError
from cityagent.hub.hub import MANIFEST, Hub, HubMeta, Origin
from cityagent.hub.parts import live_parts
from cityagent.hub.reach import DATE_FOLDER, Reach, reach_files
from cityagent.hub.schema import TABLES
from cityagent.hub.timestamps import infer_meta, offset_minutes, parse_ts_column, zone_mismatch

log = logging.getLogger(__name__)
LISTINGS = 3  # a part compacted away between listing and reading is read again from a fresh listing, this often
# what a write leaves beside its target when cut short: .<name>.old-<tag> (the previous hub, moved aside for the
# swap), .<name>.tmp-<tag> / .<name>.synth-<tag> (a new hub half-written)
_LEFTOVER = re.compile(r"^\.(?P<base>.+)\.(?P<kind>old|tmp|synth)-[0-9a-f]{8}$")


def _fs(location: str | Path) -> tuple[fsspec.AbstractFileSystem, str]:
    try:
        return fsspec.core.url_to_fs(str(location))
    except (ImportError, ValueError) as e:
        raise HubError(f"cannot open hub location {location!s}: {e}; use a directory or a supported URI") from e


def _table_files(fs: fsspec.AbstractFileSystem, root: str, name: str) -> list[str]:
    singles = [f"{root}/{name}.{ext}" for ext in ("parquet", "csv") if fs.isfile(f"{root}/{name}.{ext}")]
    parts = []
    if fs.isdir(f"{root}/{name}"):
        found = [f for f in fs.find(f"{root}/{name}") if f.endswith((".parquet", ".csv"))]
        parts = live_parts(fs, sorted(found))  # partitions sort by date=YYYY-MM-DD, keeping time order
    if len(singles) > 1:  # two copies of one table: read together they would double its rows
        names = " and ".join(posixpath.basename(f) for f in singles)
        raise HubError(f"table {name}: {root} holds both {names}; keep one of them and move the other out")
    # one file beside a folder of parts is fine: the agent and the listener append date parts to a table that
    # `write_hub` kept as one file (an empty one, or a CSV hub's)
    return singles + parts


def _strays(fs: fsspec.AbstractFileSystem, root: str) -> list[str]:
    """Entries of the hub folder that are no table, no manifest and none of the agent's own (dot or underscore)."""
    known = {MANIFEST, *TABLES, *(f"{t}.{ext}" for t in TABLES for ext in ("parquet", "csv"))}
    out = []
    for entry in fs.ls(root, detail=True):
        base = posixpath.basename(entry["name"].rstrip("/"))
        if base in known or base.startswith((".", "_")):  # .agent.lock, _rejected/ (dead letters)
            continue
        out.append(base + "/" if entry["type"] == "directory" else base)
    return sorted(out)


def _read_one(fs: fsspec.AbstractFileSystem, path: str, name: str) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The table part at ``path``, and the UTC offsets (minutes) its CSV text wrote, row by row."""
    schema = TABLES[name]
    empty = (
        f"table {name}: {path} is empty (no header); write the header row ({', '.join(schema.required)}) "
        "and the readings, or remove the file"
    )
    try:
        if fs.size(path) == 0:
            raise HubError(empty)
        with fs.open(path, "rb") as fh:
            if path.endswith(".parquet"):  # pages written with a checksum are verified: a flipped bit is an error
                return pq.read_table(fh, page_checksum_verification=True).to_pandas(), None
            ids = {c.name: str for c in schema.columns if c.kind in ("id", "str")}
            df = pd.read_csv(io.BytesIO(fh.read()), dtype=ids, keep_default_na=True)
    except pd.errors.EmptyDataError as e:  # blank lines only
        raise HubError(empty) from e
    except FileNotFoundError:  # compacted away since the listing: the caller lists again
        raise
    except (pa.ArrowInvalid, pd.errors.ParserError, UnicodeDecodeError, OSError) as e:
        what = (
            "move it aside (keep it: the agent's decisions cannot be made again)"
            if name == "decisions"
            else ("re-export the file or remove it")
        )
        raise HubError(f"table {name}: cannot read {path}: {e}; {what}") from e
    offsets = None
    if "ts" in df.columns:
        offsets = offset_minutes(df["ts"])
        df["ts"] = parse_ts_column(df["ts"])
    return df, offsets


def _read_table(fs: fsspec.AbstractFileSystem, files: list[str], name: str) -> tuple[pd.DataFrame, np.ndarray | None]:
    parts = [_read_one(fs, f, name) for f in files]
    if len(parts) == 1:
        return parts[0]
    df = pd.concat([d for d, _ in parts], ignore_index=True)
    if all(o is None for _, o in parts):
        return df, None
    return df, np.concatenate([np.full(len(d), np.nan) if o is None else o for d, o in parts])


def _read_listed(
    fs: fsspec.AbstractFileSystem,
    root: str,
    name: str,
    tables: dict[str, pd.DataFrame],
    offsets: dict[str, np.ndarray | None],
    reach: Reach | None = None,
) -> tuple[list[str], date | None, frozenset[date]]:
    """Read table ``name`` into ``tables``/``offsets``; returns the files read and, with ``reach``, the first date
    of the recent run and the older dates read when dates were left out. A part that a compaction replaced between
    listing and reading (its readings now in the compacted part) sends the read back to a new listing."""
    for attempt in range(LISTINGS):
        try:
            files, first, extra = _table_files(fs, root, name), None, frozenset()
            if reach is not None and TABLES[name].temporal:
                files, first, extra = reach_files(files, reach)
            if files:
                tables[name], offsets[name] = _read_table(fs, files, name)
            return files, first, extra
        except FileNotFoundError as e:
            if attempt == LISTINGS - 1:
                raise HubError(
                    f"table {name}: {e.filename or e} vanished while the table was read, {LISTINGS} times in a row; "
                    "something keeps rewriting the hub's files (only compaction may), stop it and read again"
                ) from e
    return [], None, frozenset()


def bad_manifest(path: str | Path, e: Exception) -> HubError:
    """The error for a hub.json that does not parse: fixing or restoring it is the advice, never deleting it."""
    return HubError(
        f"{path} is not a valid hub manifest: {e}; fix it or restore it from a copy (deleting it would change the "
        "hub's name, grid and holidays, which its models and waiting forecasts are keyed on)"
    )


def _manifest(fs: fsspec.AbstractFileSystem, path: str, tables: dict[str, pd.DataFrame], name: str) -> HubMeta:
    try:
        raw = json.loads(fs.cat_file(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise bad_manifest(path, e) from e
    example = infer_meta(tables, name=name) if tables else None  # the data's own step and zone, as the example
    return HubMeta.from_dict(raw, where=path, example=example)


def newest_dates(location: str | Path) -> dict[str, date]:
    """Each date-partitioned table's newest ``date=YYYY-MM-DD`` folder, from a listing (no file is read)."""
    fs, root = _fs(location)
    root = root.rstrip("/")
    out = {}
    for name, schema in TABLES.items():
        if not schema.temporal or not fs.isdir(f"{root}/{name}"):
            continue
        found = [posixpath.basename(p.rstrip("/")) for p in fs.ls(f"{root}/{name}", detail=False)]
        for folder in sorted((d for d in found if DATE_FOLDER.fullmatch(d)), reverse=True):
            held = fs.ls(f"{root}/{name}/{folder}", detail=False)
            if any(p.endswith((".parquet", ".csv")) for p in held):  # an empty folder holds no date yet
                out[name] = date.fromisoformat(folder.removeprefix("date="))
                break
    return out


def read_manifest(location: str | Path) -> HubMeta | None:
    """The hub's ``hub.json`` at ``location`` (None where it has none), without reading a table."""
    fs, root = _fs(location)
    path = f"{root.rstrip('/')}/{MANIFEST}"
    if not fs.isfile(path):
        return None
    return _manifest(fs, path, {}, posixpath.basename(root.rstrip("/")))


def leftovers(location: str | Path) -> dict[str, list[str]]:
    """Siblings that interrupted writes left beside the hub at ``location``, by kind (``old``, ``tmp``, ``synth``),
    newest first."""
    fs, root = _fs(location)
    parent, base = posixpath.split(root.rstrip("/"))
    try:
        entries = fs.ls(parent or ".", detail=True)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    found: dict[str, list[tuple[float, str]]] = {}
    for entry in entries:
        match = _LEFTOVER.match(posixpath.basename(entry["name"].rstrip("/")))
        if match and match["base"] == base and entry.get("type") == "directory":
            found.setdefault(match["kind"], []).append((entry.get("mtime") or 0, entry["name"]))
    return {kind: [name for _, name in sorted(paths, reverse=True)] for kind, paths in found.items()}


def restore_hint(location: str | Path) -> str | None:
    """How to restore a hub whose replacement was cut short between its two renames (the target then missing and
    the previous hub kept aside), or None when there is nothing to restore."""
    fs, root = _fs(location)
    root = root.rstrip("/")
    if fs.exists(root):
        return None
    kept = [p for p in leftovers(location).get("old", []) if fs.isfile(f"{p}/{MANIFEST}")]
    if not kept:
        return None
    return (
        f"{kept[0]} holds the hub that was at {root} (a replace was cut short before the new hub moved in); restore "
        f"it with `mv {kept[0]} {root}`"
    )


def read_file_hub(
    location: str | Path, recent: pd.Timedelta | None = None, reach: Mapping[str, Reach] | None = None
) -> Hub:
    """Read every table found under ``location``; a location with no hub data is an error.

    Args:
        location: the hub directory or URI.
        recent: read only the date partitions of the last ``recent`` before each table's newest date (and one day
            more); ``hub.origin.since`` then holds, per table left short, the time from which every reading is in.
        reach: per table, what to read instead of ``recent`` (the recent days and the dates of a few spans further
            back); ``hub.origin.read_dates`` then holds the dates read before ``since``.
    """
    fs, root = _fs(location)
    root = root.rstrip("/")
    if not fs.exists(root):
        hint = restore_hint(location)
        if hint:
            raise HubError(f"no hub at {location}: the path does not exist, but {hint}")
        raise HubError(
            f"no hub at {location}: the path does not exist; create one with "
            f"`cityagent hub synth --out {location}` or `cityagent hub import`"
        )
    tables, offsets, origin = {}, {}, Origin("files")
    default = None if recent is None else Reach.of(recent)
    firsts: dict[str, date] = {}
    for name in TABLES:
        files, first, extra = _read_listed(fs, root, name, tables, offsets, (reach or {}).get(name, default))
        if first is not None:
            firsts[name] = first
        if extra:
            origin.read_dates[name] = extra
        if files:
            rel = posixpath.relpath(files[0], root)
            origin.tables[name] = rel if len(files) == 1 and "/" not in rel else f"{name}/ ({len(files)} files)"
    has_manifest = fs.isfile(f"{root}/{MANIFEST}")
    if not tables and not has_manifest:
        raise HubError(
            f"{location} holds no hub data (no {MANIFEST} and no tables such as traffic.parquet, "
            f"traffic/ or demand.csv); point at a hub directory"
        )
    if fs.isdir(root):
        origin.strays = _strays(fs, root)
    base = posixpath.basename(root)
    meta = _manifest(fs, f"{root}/{MANIFEST}", tables, base) if has_manifest else infer_meta(tables, name=base)
    zone = meta.timezone_problem()
    if zone:
        raise HubError(f"{root}/{MANIFEST}: {zone}")
    origin.since = {  # local midnight (a midnight that a DST change skips: the first hour there is)
        name: pd.Timestamp(first).tz_localize(meta.timezone, nonexistent="shift_forward", ambiguous=True)
        for name, first in firsts.items()
    }
    for name, df in tables.items():  # CSV offsets come back as fixed offsets: show them in the city's zone
        if "ts" in df and isinstance(df["ts"].dtype, pd.DatetimeTZDtype):
            if offsets[name] is not None and has_manifest:
                mismatch = zone_mismatch(df["ts"], offsets[name], meta.timezone)
                if mismatch:
                    origin.warnings.append((name, "ts", mismatch))
            df["ts"] = df["ts"].dt.tz_convert(meta.timezone)
    return Hub(tables, meta, origin)


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
        for day, part in df.groupby(dates, sort=True):
            _write_parquet(fs, f"{root}/{name}/date={day}/part-0.parquet", part)


def _write_parquet(fs: fsspec.AbstractFileSystem, path: str, df: pd.DataFrame) -> None:
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    with fs.open(path, "wb") as fh:
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), fh, compression="zstd", write_page_checksum=True)


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
    note_leftovers(location)
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


def note_leftovers(location: str | Path) -> None:
    """Warn about half-written copies that killed writes left beside ``location`` (they are never read, but can be
    as large as the hub); they are not removed, since another write may be filling one now."""
    stale = [p for kind in ("tmp", "synth") for p in leftovers(location).get(kind, [])]
    if stale:
        log.warning(
            "%d half-written cop%s of %s left by interrupted writes: %s; remove them once no other write to it runs",
            len(stale),
            "y" if len(stale) == 1 else "ies",
            location,
            ", ".join(stale),
        )


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
