"""What starting a Ray Train run costs: a tiny 2-worker fit, and the imports of each process Ray starts for it.

    python benchmarks/ray_startup.py --runs 3
    python benchmarks/ray_startup.py --runs 2 --tune 2   # sweeps of 2 trials, each a 2-worker Ray Train run

The fit trains a GRU of 8 units for 2 epochs on 6 synthetic sensors, so nearly all its wall time is Ray's: the local
instance, the Train controller and its helper actors, the worker group. Every process Ray starts inherits
PYTHONPROFILEIMPORTTIME, and its log under the session folder says what it imported and how long that took; the
table sums each actor's top-level imports (under contention for the cores, so they overlap).
"""

import argparse
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def actor_imports(session: Path) -> dict[str, list[float]]:
    """Seconds of top-level imports per Ray actor class of one session (a list: one entry per process)."""
    out: dict[str, list[float]] = defaultdict(list)
    for log in (session / "logs").glob("worker-*.err"):
        lines = log.read_text().splitlines()
        actor = next((ln.removeprefix(":actor_name:") for ln in lines if ln.startswith(":actor_name:")), None)
        if actor is None:
            continue  # a pooled worker that ran no actor
        # rows, not the header ("self [us] | cumulative | ..."), which Python may print before Ray's redirect
        top = [cols for ln in lines if ln.startswith("import time:") and (cols := ln.split("|"))[1].strip().isdigit()]
        # a top-level module is indented by one space; its cumulative column includes its children
        out[actor].append(sum(int(cols[1]) for cols in top if cols[2].startswith(" ") and cols[2][1] != " ") / 1e6)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tune", type=int, default=0, metavar="SAMPLES", help="time `tune` sweeps instead of fits")
    args = ap.parse_args()
    home = Path(os.environ.setdefault("CITYAGENT_HOME", tempfile.mkdtemp(prefix="cityagent-raystart-")))
    os.environ["PYTHONPROFILEIMPORTTIME"] = "1"  # for the processes Ray starts; this one has imported already

    from cityagent.hub.synth import synthesize
    from cityagent.training.fit import fit
    from cityagent.training.ray_cluster import ray_temp_dir
    from cityagent.training.tune import tune

    hub = synthesize(home / "hub", sensors=6, zones=4, days=3, seed=1, progress=False)
    settings = {"task.params": {"input_len": 6, "horizon": 3}, "train.max_epochs": 2, "train.max_failures": 0}
    settings |= {"task.hub": str(hub), "model.name": "gru", "model.params": {"hidden_size": 8}, "train.workers": 2}
    settings |= {"tracking.register_model": False, "tracking.plots": False}
    walls, imports = [], defaultdict(list)
    for i in range(args.runs):
        before = set(ray_temp_dir().glob("session_2*"))
        t0 = time.perf_counter()
        if args.tune:
            space = {"model.params.hidden_size": [4, 8]}
            tune(None, args.tune, space, say=lambda _: None, **(settings | {"model.params": {}}))
        else:
            fit(None, **settings, progress=False)
        walls.append(time.perf_counter() - t0)
        (session,) = set(ray_temp_dir().glob("session_2*")) - before
        for actor, seconds in actor_imports(session).items():
            imports[actor] += seconds
        print(f"run {i + 1}: {walls[-1]:.1f} s", flush=True)
    what = f"--runs {args.runs}" + (f" --tune {args.tune}`: sweep" if args.tune else "`: fit")
    walls_said = ", ".join(f"{w:.1f}" for w in walls)
    print(f"\n`python benchmarks/ray_startup.py {what} wall {statistics.mean(walls):.1f} s (runs: {walls_said})\n")
    print(f"| Ray actor | processes per {'sweep' if args.tune else 'run'} | imports per process (s, mean) |")
    print("|---|---|---|")
    for actor, seconds in sorted(imports.items(), key=lambda kv: -statistics.mean(kv[1])):
        print(f"| {actor} | {len(seconds) / args.runs:g} | {statistics.mean(seconds):.2f} |")


if __name__ == "__main__":
    main()
