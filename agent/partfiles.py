"""Appending to a Parquet hub: new ``part-<uuid>.parquet`` files, written under a temporary name and renamed.

Part names are UUIDv7 (RFC 9562: milliseconds first, then a counter), so within a date folder they sort in the
order they were written. The hub reader concatenates a table's files in name order, which keeps every series in
time order as long as each new part holds only readings newer than those already written (microbatch checks it).
"""

import secrets
import threading
import time
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cityagent.agent.durable import write_atomic

COMPRESSION = "zstd"  # as the hub writer uses


class _Uuid7:
    """Strictly increasing UUIDv7s within this process (a 12-bit counter orders ids of the same millisecond)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ms = 0
        self._counter = 0

    def __call__(self) -> uuid.UUID:
        with self._lock:
            ms = max(time.time_ns() // 1_000_000, self._ms)
            if ms == self._ms:
                self._counter += 1
                if self._counter > 0xFFF:
                    ms, self._counter = ms + 1, 0
            else:
                self._counter = 0
            self._ms = ms
            value = (ms << 80) | (0x7 << 76) | (self._counter << 64) | (0b10 << 62) | secrets.randbits(62)
            return uuid.UUID(int=value)


uuid7 = _Uuid7()


def write_part(folder: Path, df: pd.DataFrame, name: uuid.UUID | None = None) -> Path:
    """Write ``df`` as a new part file in ``folder``; readers see the whole file or nothing.

    ``name`` is a ``uuid7()`` drawn beforehand (a replay records where its readings go before writing them);
    by default one is drawn now.

    The temporary name does not end in ``.parquet``, so a reader listing the folder mid-write skips it; the
    rename is atomic on one filesystem; the data is fsynced first so a crash cannot leave a truncated part.
    """
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"part-{name or uuid7()}.parquet"
    table = pa.Table.from_pandas(df, preserve_index=False)
    write_atomic(final, lambda fh: pq.write_table(table, fh, compression=COMPRESSION))
    return final
