"""Replaying a backlog of dead letters: new sensors that streamed for days before they were added to the hub.

    python benchmarks/replay_backlog.py                         # 50 sensors x 1000 steps (10 days), ~20 s
    python benchmarks/replay_backlog.py --sensors 5 --steps 40  # a smoke check

Writes a small hub (tests' tiny city: 3 sensors), then dead letters as the listener writes them for sensors that
send one JSON array of all their readings per step: every reading of an unknown sensor is a letter of kind
`unknown id` carrying the whole array (so a day of 50 sensors is ~24 MiB of letters). Adds the sensors to
`sensors.parquet`, runs `cityagent.agent.replay.replay` in a fresh process and reports its wall time and that
process's peak RSS, then checks every reading entered the hub exactly once and no dead letter is left.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(root: Path, sensors: int, steps: int) -> int:
    import pandas as pd

    from cityagent.agent.deadletter import DeadLetter, Rejection
    from cityagent.hub import write_hub

    sys.path.insert(0, str(ROOT))
    from tests.factories import tiny_hub

    write_hub(tiny_hub(), root)
    dead, batch = DeadLetter(root), []
    start = pd.Timestamp("2026-03-02T04:00:00+08:00")  # the tiny hub's readings end at 03:45
    for k in range(steps):
        ts = start + pd.Timedelta(minutes=15 * k)
        readings = [
            {"sensor_id": f"n{i}", "ts": ts.isoformat(), "speed": 30.0 + i, "flow": 4.0} for i in range(sensors)
        ]
        payload, received = json.dumps(readings).encode(), ts.tz_convert("UTC").to_pydatetime()
        why = "is not in the hub's sensors; add it there first"
        batch += [
            Rejection("city/traffic/readings", payload, f"sensor_id 'n{i}' {why}", received, i, "unknown id")
            for i in range(sensors)
        ]
        if len(batch) >= 20_000:
            dead.write(batch)
            batch = []
    dead.write(batch)
    table = pd.read_parquet(root / "sensors.parquet")
    added = pd.DataFrame({"sensor_id": [f"n{i}" for i in range(sensors)], "lat": 22.6, "lon": 114.1})
    pd.concat([table, added], ignore_index=True).to_parquet(root / "sensors.parquet", index=False)
    return sum(p.stat().st_size for p in (root / "_rejected").glob("*.jsonl"))


def run_replay(root: Path) -> None:
    """In its own process (``--replay``): one line of JSON with the wall time and the peak RSS."""
    from cityagent.agent.replay import replay

    t0 = time.perf_counter()
    report = replay(root)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"s": seconds, "peak_mib": peak, "accepted": sum(report.accepted.values())}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sensors", type=int, default=50)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--replay", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.replay:
        run_replay(args.replay)
        return 0
    with tempfile.TemporaryDirectory(prefix="replay-backlog-") as tmp:
        root = Path(tmp) / "hub"
        size = build(root, args.sensors, args.steps)
        files = len(list((root / "_rejected").glob("*.jsonl")))
        done = subprocess.run(
            [sys.executable, __file__, "--replay", str(root)], capture_output=True, text=True, check=False
        )
        if done.returncode:
            print(done.stderr[-4000:], file=sys.stderr)
            return done.returncode
        out = json.loads(done.stdout.strip().splitlines()[-1])
        from cityagent.agent.deadletter import read_rejections
        from cityagent.hub import read_hub

        traffic = read_hub(root).tables["traffic"]
        new = traffic[traffic["sensor_id"].str.startswith("n")]
        letters = args.sensors * args.steps
        shape = f"{args.sensors} sensors x {args.steps} steps"
        print(f"{letters:,} dead letters ({shape}) in {files} file(s), {size / 2**20:.1f} MiB")
        print(f"replay: {out['s']:.1f} s, peak RSS {out['peak_mib']:.0f} MiB, {out['accepted']:,} readings appended")
        twice = int(new.duplicated(["sensor_id", "ts"]).sum())
        left = len(read_rejections(root))
        if len(new) != letters or twice or left or out["accepted"] != letters:
            print(f"FAILED: {len(new)} rows in the hub, {twice} twice, {left} dead letters left", file=sys.stderr)
            return 1
        print("every reading entered the hub once; no dead letter is left")
    return 0


if __name__ == "__main__":
    sys.exit(main())
