"""What an agent cycle reads of an old hub: the whole hub against `loop.history`, side by side in one run.

    python benchmarks/history.py                 # a 105-day city, ~2 min on 2 cores
    python benchmarks/history.py --days 40       # a smoke check

Synthesises one city (`hub synth`: 64 sensors, 16 zones, `--days` days of 5-minute readings), then times
`read_hub` of the whole hub and of `recent=loop.history` (median of `--repeats`, alternating) and measures what
each holds in memory (the tables' deep memory usage: what a cycle keeps while it runs). The history read must
equal the whole hub's rows from its `since` on, or the script fails.
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def mib(hub) -> float:
    return sum(df.memory_usage(deep=True).sum() for df in hub.tables.values()) / 2**20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=105, help="days of readings in the hub")
    ap.add_argument("--history", default="35D", help="loop.history, a pandas duration")
    ap.add_argument("--repeats", type=int, default=3, help="reads of each kind (median)")
    args = ap.parse_args(argv)

    from cityagent.hub import read_hub
    from cityagent.hub.synth import synthesize

    work = Path(tempfile.mkdtemp(prefix="cityagent-history-"))
    try:
        root = synthesize(work / "hub", sensors=64, zones=16, days=args.days, step="5min", seed=0)
        recent = pd.Timedelta(args.history)
        times: dict[str, list[float]] = {"whole": [], "history": []}
        hubs = {}
        for _ in range(args.repeats):
            for kind, arg in (("whole", None), ("history", recent)):
                t0 = time.perf_counter()
                hubs[kind] = read_hub(root, recent=arg)
                times[kind].append(time.perf_counter() - t0)
        whole, part = hubs["whole"], hubs["history"]
        for name, since in part.origin.since.items():
            want = whole.table(name)[whole.table(name)["ts"] >= since].reset_index(drop=True)
            pd.testing.assert_frame_equal(part.table(name), want, check_exact=True)
        t_whole, t_part = (statistics.median(times[k]) for k in ("whole", "history"))
        rows = {k: sum(len(df) for df in h.tables.values()) for k, h in hubs.items()}
        print(f"{args.days}-day hub, loop.history {args.history} (read from {part.origin.since['traffic']:%Y-%m-%d})")
        print(f"{'read':<10} {'rows':>10} {'memory MiB':>11} {'seconds':>8}")
        for kind, t in (("whole", t_whole), ("history", t_part)):
            print(f"{kind:<10} {rows[kind]:>10,} {mib(hubs[kind]):>11.1f} {t:>8.3f}")
        print(
            f"whole / history: {t_whole / t_part:.1f}× the time, {mib(whole) / mib(part):.1f}× the memory; "
            "the history read equals the whole hub's rows from its since on"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
