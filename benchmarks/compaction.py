"""Reading a hub the listener has been appending to, with and without compaction, side by side in one run.

    python benchmarks/compaction.py              # 2 days of 5-minute batches, ~3 min on 2 cores
    python benchmarks/compaction.py --steps 96   # a smoke check

Writes one synthetic city (`hub synth`: 64 sensors, 16 zones, 7 days), copies it twice, and appends the same
readings to both copies one 5-minute step per batch through the listener's own path (`microbatch.append_batch`:
traffic, demand and weather, a part file per table and batch), once as before compaction existed and once with it.
Every `--every` steps it times `read_hub` on both (median of `--repeats`; the agent read the whole hub every
cycle when this was written) and counts the part files. It also times the appends, so the cost of compacting shows
where it is paid.
Both copies must read back equal, row order included, or the script fails.
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

TABLES = ("traffic", "demand", "weather")


def feed(hub_dir: Path) -> tuple[pd.Timestamp, pd.Timedelta, dict[str, dict[str, list[dict]]], str]:
    """The hub's last day by time of day, to replay after its end: (first new step, step, rows by slot, zone)."""
    from cityagent.hub import read_hub

    hub = read_hub(hub_dir)
    tz, step = hub.meta.timezone, hub.meta.step_delta
    end = hub.table("traffic")["ts"].max()
    day: dict[str, dict[str, list[dict]]] = {}
    for table in TABLES:
        df = hub.table(table)
        df = df[df["ts"] > end - pd.Timedelta(days=1)].copy()
        slots = df["ts"].dt.tz_convert(tz).dt.strftime("%H:%M")
        rows = df.drop(columns="ts").to_dict("records")
        day[table] = {}
        for slot, r in zip(slots, rows, strict=True):
            day[table].setdefault(slot, []).append(r)
    return end.tz_convert(tz) + step, step, day, tz


def read_time(hub_dir: Path, repeats: int) -> float:
    from cityagent.hub import read_hub

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        read_hub(hub_dir)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def parts(hub_dir: Path) -> int:
    return sum(1 for t in TABLES for _ in (hub_dir / t).rglob("*.parquet"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=576, help="5-minute batches to append (576 = 2 days)")
    ap.add_argument("--every", type=int, default=96, help="time the reads every this many steps")
    ap.add_argument("--repeats", type=int, default=3, help="reads per measurement (median)")
    args = ap.parse_args(argv)

    import cityagent.agent.microbatch as microbatch
    from cityagent.agent.livehub import LiveHub
    from cityagent.agent.readings import to_record
    from cityagent.hub import read_hub
    from cityagent.hub.synth import synthesize

    work = Path(tempfile.mkdtemp(prefix="cityagent-compaction-"))
    try:
        base = work / "base"
        synthesize(base, sensors=64, zones=16, days=7, step="5min", seed=0, start="2026-03-02")
        first, step, day, tz = feed(base)
        hubs = {"parts as appended": work / "plain", "compacted": work / "compacted"}
        for path in hubs.values():
            shutil.copytree(base, path)
        lives = {name: LiveHub(path) for name, path in hubs.items()}
        appending = {name: 0.0 for name in hubs}
        real = microbatch.compact_due
        now = first + args.steps * step + pd.Timedelta(days=1)
        rows = []
        head = ("steps", "files (plain / compacted)", "read plain s", "read compacted s", "ratio")
        print(" ".join(f"{h:>{w}}" for h, w in zip(head, (6, 27, 13, 17, 6), strict=True)))
        for i in range(args.steps):
            ts = first + i * step
            for name, live in lives.items():
                microbatch.compact_due = real if name == "compacted" else (lambda *a: [])
                t0 = time.perf_counter()
                for table in TABLES:
                    objs = day[table].get(f"{ts:%H:%M}", [])
                    records = [to_record(table, {**r, "ts": ts.isoformat()}, tz) for r in objs]
                    result = microbatch.append_batch(live, table, records, now=now)
                    if result.rejected:
                        raise SystemExit(f"step {i}: {table} readings rejected: {list(result.rejected.values())[:2]}")
                appending[name] += time.perf_counter() - t0
            microbatch.compact_due = real
            if (i + 1) % args.every == 0 or i + 1 == args.steps:
                plain, done = (read_time(p, args.repeats) for p in hubs.values())
                files = tuple(parts(p) for p in hubs.values())
                rows.append((i + 1, files, plain, done))
                print(f"{i + 1:>6} {f'{files[0]} / {files[1]}':>27} {plain:>13.3f} {done:>17.3f} {plain / done:>6.1f}")
        a, b = (read_hub(p) for p in hubs.values())
        for table in a.tables:
            pd.testing.assert_frame_equal(a.table(table), b.table(table), check_exact=True)
        n = args.steps * len(TABLES)
        print(
            f"both hubs read back equal, row order included; appending {n} batches took "
            f"{appending['parts as appended']:.1f} s without compaction and {appending['compacted']:.1f} s with it "
            f"({appending['compacted'] / appending['parts as appended']:.2f}×)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
