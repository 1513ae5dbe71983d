"""Time a large synthetic city written straight to Parquet: wall time, peak RSS, rows and bytes on disk.

    python benchmarks/synth_large.py --sensors 10000 --days 365 --out /tmp/synth-large

Prints one Markdown table row for BENCHMARKS.md and deletes the hub unless ``--keep``.
"""

import argparse
import datetime as dt
import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from cityagent.hub.synth import synthesize

HEADER = (
    "| date | sensors | zones | days | step | rows written | traffic rows | wall | rows/s "
    "| peak RSS | on disk | machine |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def count(root: Path) -> tuple[int, int, int]:
    """(all rows, traffic rows, bytes) of the Parquet files under ``root``, from their footers."""
    rows = traffic = size = 0
    for f in root.rglob("*.parquet"):
        n = pq.ParquetFile(f).metadata.num_rows
        rows += n
        traffic += n if f.parts[len(root.parts)] == "traffic" else 0
        size += f.stat().st_size
    return rows, traffic, size + (root / "hub.json").stat().st_size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sensors", type=int, default=10_000)
    ap.add_argument("--zones", type=int, default=16)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--step", default="5min")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/synth-large"))
    ap.add_argument("--keep", action="store_true", help="keep the hub instead of deleting it")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    out = synthesize(args.out, args.sensors, args.zones, args.days, args.step, args.seed, progress=not args.no_progress)
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    rows, traffic, size = count(out)
    if not args.keep:
        shutil.rmtree(out)

    machine = f"{os.cpu_count()} CPU {platform.machine()}, Python {sys.version.split()[0]}"
    print(HEADER)
    print(
        f"| {dt.date.today()} | {args.sensors:,} | {args.zones} | {args.days} | {args.step} | {rows:,} "
        f"| {traffic:,} | {wall:.1f} s | {rows / wall / 1e6:.2f} M | {peak_mb:,.0f} MB | {size / 1e6:,.0f} MB "
        f"| {machine} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
