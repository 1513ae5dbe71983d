"""Stream the synthetic city to a Parquet hub directory, one day at a time, replacing ``out`` atomically."""

import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cityagent.errors import HubError
from cityagent.hub.files import note_leftovers, replace_dir
from cityagent.hub.hub import MANIFEST
from cityagent.hub.synth.chunks import DayChunk, hub_meta, iter_days
from cityagent.hub.synth.city import build_city, static_tables
from cityagent.hub.synth.params import SynthParams, SynthSpec

COMPRESSION = "zstd"  # smaller and, for these tables, no slower to write than snappy


def write_table(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression=COMPRESSION)


def write_day(root: Path, chunk: DayChunk) -> None:
    """Write one day of every temporal table as ``<table>/date=YYYY-MM-DD/part-0.parquet`` (empty days too)."""
    for name, table in chunk.tables.items():
        write_table(table, root / name / f"date={chunk.date.isoformat()}" / "part-0.parquet")


def _write_days(root: Path, chunks: Iterator[DayChunk], done: Callable[[], None]) -> None:
    """Write each day while the next one is generated (Parquet encoding releases the GIL).

    At most one write is in flight, so memory holds two days; a failed write stops the run, and no
    write is still running when this returns or raises.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth-writer") as pool:
        pending: Future[None] | None = None
        try:
            for chunk in chunks:
                if pending is not None:
                    pending.result()
                    done()
                pending = pool.submit(write_day, root, chunk)
            if pending is not None:
                pending.result()
                done()
        except BaseException:
            if pending is not None:
                pending.cancel()
                wait([pending])
            raise


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise HubError(f"{out} is a file, not a hub directory; pass a directory path for the synthetic hub")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise HubError(
            f"{out} is a non-empty directory without {MANIFEST}, so it is not a hub and will not be overwritten; "
            "pass a new or empty directory"
        )


def _move_into_place(tmp: Path, out: Path) -> None:
    """Swap ``tmp`` in for ``out``; the old hub is removed only once the new one is in place."""
    old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    replace_dir(fsspec.filesystem("file"), str(tmp), str(out), str(old))


def synthesize(
    out: str | Path,
    sensors: int = 64,
    zones: int = 16,
    days: int = 7,
    step: str = "5min",
    seed: int = 0,
    start: str = "2026-03-02",
    progress: bool = True,
    params: SynthParams | None = None,
) -> Path:
    """Generate a synthetic hub straight to Parquet without holding the series in memory.

    The hub is written into a hidden sibling directory and moved to ``out`` only when complete, so an
    interrupted run leaves ``out`` as it was. Arguments as in ``synth_hub``; the values are identical.

    Args:
        out: hub directory to create; an existing hub there is replaced, any other non-empty directory refused.
        sensors, zones, days, step, seed, start, params: see ``synth_hub``.
        progress: show a progress bar over days (on stderr).

    Returns:
        The hub directory.
    """
    spec = SynthSpec(sensors, zones, days, step, seed, start, params or SynthParams())
    out = Path(out).expanduser().resolve()
    _check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    note_leftovers(out)
    tmp = out.with_name(f".{out.name}.synth-{uuid.uuid4().hex[:8]}")
    try:
        tmp.mkdir()
        city = build_city(spec)
        for name, table in static_tables(city).items():
            write_table(table, tmp / f"{name}.parquet")
        with Progress(
            TextColumn("synthesising {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("days"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not progress,
        ) as bar:
            task = bar.add_task(f"{sensors:,} sensors, {zones} zones", total=days)
            _write_days(tmp, iter_days(spec, city), lambda: bar.advance(task))
        (tmp / MANIFEST).write_text(json.dumps(hub_meta(spec, city).to_dict(), indent=2))  # last: marks completion
        _check_target(out)  # it may have changed while we were generating
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
