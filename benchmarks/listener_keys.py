"""Memory of the listener's duplicate check: one date's (sensor, ts) keys, as a set of tuples and as DateKeys.

    python benchmarks/listener_keys.py                   # 10,000 sensors x 288 steps, ~1 min
    python benchmarks/listener_keys.py --sensors 1000    # a smoke check

The listener keeps the keys of the last two dates per table to reject duplicate and late readings
(`agent.livehub.DateKeys`). Until 2026-12-07 they were a set of (sensor, ts) tuples plus each sensor's newest ts;
now each sensor has a sorted int64 array. Both are built here from the same readings, one batch per 5-minute step
as the listener adds them, and measured with tracemalloc side by side in one run; both must answer the same to
every lookup (a key of the date, the same key one nanosecond later, and each sensor's newest).
"""

import argparse
import sys
import time
import tracemalloc

import numpy as np
import pandas as pd


class TupleKeys:
    """The keys as the listener held them before: a set of (node, ts) tuples and a dict of newest ts."""

    def __init__(self) -> None:
        self.keys: set[tuple[str, int]] = set()
        self.newest_ts: dict[str, int] = {}

    def add(self, nodes: np.ndarray, ts_ns: np.ndarray) -> None:
        self.keys.update(zip(nodes.tolist(), ts_ns.tolist(), strict=True))
        for node, t in pd.Series(ts_ns).groupby(nodes).max().items():
            self.newest_ts[node] = max(int(t), self.newest_ts.get(node, int(t)))

    def has(self, node: str, t: int) -> bool:
        return (node, t) in self.keys

    def newest(self, node: str) -> int | None:
        return self.newest_ts.get(node)


def fill(kind, sensors: np.ndarray, steps: np.ndarray):
    keys = kind()
    for t in steps:  # one batch per step, as the listener adds them
        keys.add(sensors, np.full(len(sensors), t, dtype=np.int64))
    return keys


def build(kind, sensors: np.ndarray, steps: np.ndarray) -> tuple[object, float, float]:
    """The keys of one date; (keys, MiB held, seconds). Timed without tracemalloc, which slows every allocation
    (many more for the arrays than for one set), then built again under it for the memory."""
    t0 = time.perf_counter()
    fill(kind, sensors, steps)
    seconds = time.perf_counter() - t0
    tracemalloc.start()
    keys = fill(kind, sensors, steps)
    held = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    return keys, held, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sensors", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=288, help="readings per sensor in the date (288: 5-minute steps)")
    args = ap.parse_args(argv)

    from cityagent.agent.livehub import DateKeys

    sensors = np.array([f"s{i:05d}" for i in range(args.sensors)], dtype=object)
    start = pd.Timestamp("2026-03-02", tz="Asia/Shanghai").value
    steps = start + np.arange(args.steps, dtype=np.int64) * pd.Timedelta("5min").value
    rows = {}
    built = {}
    for name, kind in (("set of (sensor, ts) tuples", TupleKeys), ("DateKeys: an int64 array per sensor", DateKeys)):
        built[name], held, seconds = build(kind, sensors, steps)
        rows[name] = (held, seconds)
    old, new = built.values()
    rng = np.random.default_rng(0)
    for i in rng.integers(0, args.sensors, 2000):
        node, t = sensors[i], int(steps[rng.integers(0, args.steps)])
        assert old.has(node, t) and new.has(node, t) and not new.has(node, t + 1) and not old.has(node, t + 1)
        assert old.newest(node) == new.newest(node) == int(steps[-1])
    n = args.sensors * args.steps
    print(f"one date: {args.sensors:,} sensors x {args.steps} steps = {n:,} readings, added in {args.steps} batches")
    print(f"{'keys':<38} {'MiB held':>9} {'bytes/reading':>14} {'adding s':>9}")
    for name, (held, seconds) in rows.items():
        print(f"{name:<38} {held:>9.1f} {held * 2**20 / n:>14.1f} {seconds:>9.2f}")
    (a, _), (b, _) = rows.values()
    print(f"the set holds {a / b:.1f}x the memory; both answer every lookup alike")
    return 0


if __name__ == "__main__":
    sys.exit(main())
