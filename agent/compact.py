"""Compaction: a date folder's many small part files merged into one, so reading the hub opens a few files.

The listener writes a part per table and date per batch and the agent a decisions part per cycle: at 5-minute
batches that is ~300 files a day per table, and every cycle of the agent opens them all (its cycle time grew from
0.6 s to 1.7 s over 200 cycles in the soak benchmark). Writers compact what they appended to once a folder holds
``COMPACT_AT`` parts, and every folder they have moved past as soon as it holds two; ``cityagent hub compact``
does the same for a whole hub (one written by an older version, or after a listener that was stopped).

A compacted part holds its parts' rows in read order and names them in its metadata (``cityagent.hub.parts``); it is
written under a temporary name, read back and compared with its parts before it is renamed into place, and only
then are the parts deleted. Anything that does not read back the same is left as it was, with a warning.
"""

import json
import logging
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cityagent.agent.durable import sync_dir
from cityagent.agent.lock import LockHeld, compact_lock
from cityagent.agent.partfiles import COMPRESSION
from cityagent.errors import CityAgentError, HubError
from cityagent.hub.hub import MANIFEST
from cityagent.hub.parts import COVERS_KEY, compacted_name, live_parts
from cityagent.hub.schema import TABLES

log = logging.getLogger(__name__)

COMPACT_AT = 24  # parts in a folder still being written before it is compacted (2 hours of 5-minute batches)
_FS = fsspec.filesystem("file")
# folders whose parts would not merge, with those parts: a writer retrying after every append would read them all
# and warn each time; tried again once the folder's parts change
_UNMERGED: dict[Path, tuple[frozenset[str], str]] = {}


@dataclass(frozen=True)
class Compacted:
    """What compacting one date folder did: ``parts`` merged into ``path`` (``rows`` readings), ``removed``
    files deleted (the merged parts and any an interrupted compaction left), or ``skipped`` with the reason."""

    folder: Path
    parts: int = 0
    rows: int = 0
    removed: int = 0
    path: Path | None = None
    skipped: str = ""


def folder_parts(folder: Path) -> tuple[list[str], list[str]]:
    """``(live, stale)`` part files of one date folder, in read order: stale ones a compacted part already holds."""
    files = sorted(str(p) for p in folder.iterdir() if p.name.endswith(".parquet") and p.is_file())
    live = live_parts(_FS, files)
    keep = set(live)
    return live, [f for f in files if f not in keep]


def compact_folder(folder: Path, min_parts: int = 2) -> Compacted:
    """Merge the live parts of one date folder into one when there are at least ``min_parts``.

    The caller holds ``compact_lock`` on the hub. Leftovers of an interrupted compaction are deleted either way.
    """
    if any(p.suffix == ".csv" for p in folder.iterdir()):
        return Compacted(folder, skipped="holds CSV parts (only Parquet parts are compacted)")
    live, stale = folder_parts(folder)
    if len(live) < max(2, min_parts):
        return Compacted(folder, removed=_remove(stale))
    known = _UNMERGED.get(folder)
    if known and known[0] == frozenset(live):
        return Compacted(folder, removed=_remove(stale), skipped=known[1])
    tables = [pq.read_table(p, page_checksum_verification=True) for p in live]
    try:
        merged = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        return _skip(folder, live, f"its parts have columns that do not merge ({e})", stale)
    names = [Path(p).name for p in live]
    meta = {**(merged.schema.metadata or {}), COVERS_KEY: json.dumps(names).encode()}
    final = folder / compacted_name(names[0], secrets.token_hex(4))
    while final.exists():  # the rename below would replace it without a word
        final = folder / compacted_name(names[0], secrets.token_hex(4))
    tmp = folder / f".{final.name}.tmp"
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(merged.replace_schema_metadata(meta), fh, compression=COMPRESSION, write_page_checksum=True)
            fh.flush()
            os.fsync(fh.fileno())
        # what a reader of the parts would get (pandas concatenation, as hub.files reads them), and what it will get
        expected = pd.concat([t.to_pandas() for t in tables], ignore_index=True)
        if not pq.read_table(tmp, page_checksum_verification=True).to_pandas().equals(expected):
            tmp.unlink()
            return _skip(folder, live, "the merged file does not read back as its parts do", stale)
        os.replace(tmp, final)  # the one step readers see: from here they read `final` and ignore the parts
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_dir(folder)  # the rename is on disk before any part it replaces is deleted
    _UNMERGED.pop(folder, None)
    return Compacted(folder, len(live), merged.num_rows, _remove(live + stale), final)


def _skip(folder: Path, live: list[str], why: str, stale: list[str]) -> Compacted:
    log.warning("left %d parts of %s as they are: %s", len(live), folder, why)
    _UNMERGED[folder] = (frozenset(live), why)
    return Compacted(folder, removed=_remove(stale), skipped=why)


def _remove(paths: Iterable[str]) -> int:
    n = 0
    for p in paths:
        try:
            os.unlink(p)
            n += 1
        except FileNotFoundError:
            pass
    return n


def date_folders(root: Path, table: str) -> list[Path]:
    """The ``date=YYYY-MM-DD`` folders of ``table`` in date order."""
    base = root / table
    return sorted(p for p in base.glob("date=*") if p.is_dir()) if base.is_dir() else []


def compact_hub(root: str | Path, tables: Iterable[str] | None = None, min_parts: int = 2) -> list[Compacted]:
    """Compact every date folder of the hub's temporal tables (or of ``tables``) holding ``min_parts`` or more.

    Raises:
        HubError: ``root`` is not a local hub directory, or a table name is unknown.
        CompactionBusy: another process compacts this hub now.
    """
    root = Path(root)
    if "://" in str(root) or not (root / MANIFEST).is_file():
        raise HubError(f"{root} is not a local hub directory with {MANIFEST}; compaction rewrites local part files")
    temporal = [t for t, s in TABLES.items() if s.temporal]
    chosen = list(tables or temporal)
    unknown = [t for t in chosen if t not in temporal]
    if unknown:
        raise HubError(f"unknown table(s) {unknown}; partitioned tables are {temporal}")
    with compact_lock(root):
        return [compact_folder(f, min_parts) for t in chosen for f in date_folders(root, t)]


def compact_due(root: Path, table: str, written: Iterable[str]) -> list[Compacted]:
    """After appending to ``table``: compact the folders of the ``written`` dates once they hold ``COMPACT_AT``
    parts, and every other folder with two or more (a date the writer has moved past, or one a crash left).

    Never raises for a busy lock or a failing disk: the parts stay readable as they are, and it is tried again
    after the next append.
    """
    open_dates = {f"date={d}" for d in written}
    done: list[Compacted] = []
    try:
        with compact_lock(root):
            for folder in date_folders(root, table):
                n = sum(1 for p in folder.iterdir() if p.name.endswith(".parquet"))
                if n >= (COMPACT_AT if folder.name in open_dates else 2):
                    done.append(compact_folder(folder, 2))
    except LockHeld:
        pass  # `hub compact` runs now: it does this work
    except (OSError, CityAgentError) as e:  # a full disk, a broken part: reading is unaffected, appending goes on
        log.warning("could not compact %s/%s: %s; its parts stay as they are", root, table, e)
    return done
