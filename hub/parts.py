"""Which part files of a partitioned table are live: a compacted part replaces the parts it names.

The listener and the agent append one part file per batch (``part-<uuid7>.parquet``); compaction
(``cityagent.agent.compact``) merges a date folder's parts into one, ``part-<first>+<token>.parquet``, whose
Parquet metadata lists the file names it holds. Readers drop the named files, so replacing many parts by one is a
single atomic rename: a reader sees either the old parts or the compacted one, never both, and a crash before the
old files are deleted leaves only files every reader ignores.

The name sorts where its first part did ('+' sorts below '-', '.' and every hex digit), so reading a table in name
order keeps the rows in the order they were written.
"""

import json
import posixpath
from collections.abc import Iterable

import fsspec
import pyarrow.parquet as pq

from cityagent.errors import HubError

COVERS_KEY = b"cityagent.covers"  # Parquet key-value metadata: JSON list of the file names a compacted part holds
MARK = "+"


def is_compacted(path: str) -> bool:
    """A part written by compaction (``part-<first>+<token>.parquet``)."""
    name = posixpath.basename(path)
    return name.endswith(".parquet") and MARK in name


def compacted_name(first: str, token: str) -> str:
    """The name of a compacted part whose first part is ``first``: it sorts just before ``first`` did."""
    stem = first.removesuffix(".parquet").split(MARK, 1)[0]  # a re-compaction keeps the original first name
    return f"{stem}{MARK}{token}.parquet"


def covered(fs: fsspec.AbstractFileSystem, path: str) -> list[str]:
    """The file names (in the same folder) that the compacted part at ``path`` holds."""
    try:
        with fs.open(path, "rb") as fh:
            meta = pq.read_schema(fh).metadata or {}
        names = json.loads(meta[COVERS_KEY])
    except (KeyError, ValueError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise HubError(
            f"{path} is named as a compacted part but its metadata does not list the parts it holds ({e}); "
            "move it out of the hub (its readings are also in the parts it was made from, unless those are gone)"
        ) from e
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise HubError(f"{path}: the {COVERS_KEY.decode()} metadata must be a list of file names; move the file out")
    return names


def live_parts(fs: fsspec.AbstractFileSystem, files: Iterable[str]) -> list[str]:
    """``files`` (in read order) without those a compacted part in their folder holds.

    Raises:
        HubError: two live compacted parts hold the same file (two compactions ran side by side), which would
            read its readings twice.
    """
    files = list(files)
    holds = {p: covered(fs, p) for p in files if is_compacted(p)}  # one footer read per compacted part
    held = {(posixpath.dirname(p), name) for p, names in holds.items() for name in names}
    live = [p for p in files if (posixpath.dirname(p), posixpath.basename(p)) not in held]
    owners: dict[tuple[str, str], str] = {}
    for path in live:
        for name in holds.get(path, ()):
            key = (posixpath.dirname(path), name)
            if key in owners:
                raise HubError(
                    f"{owners[key]} and {path} both hold the readings of {name} (two compactions ran at once); "
                    "move one of them out of the hub"
                )
            owners[key] = path
    return live
