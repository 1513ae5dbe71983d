"""What scheduled retrains leave on this machine's disk: one retrain after another, on a local Ray, for real.

    python benchmarks/retrain_disk.py                 # 8 retrains, ~5 min on 2 cores
    python benchmarks/retrain_disk.py --retrains 3    # a smoke check
    python benchmarks/retrain_disk.py --keep-versions 2   # retrain.keep_versions: the MLflow store stays bounded

Makes a temporary CITYAGENT_HOME with a synthetic city (32 sensors, 5 days), then runs
`cityagent.agent.retrain.retrain("traffic")` again and again as the scheduler does (configs/traffic.yaml's STID for
one epoch, on a local Ray with `--workers` workers, exported, registered and gated each time), with
`$CITYAGENT_RAY_KEEP_SESSIONS` set to `--keep`. After each retrain it measures what lies under the home: Ray's
session folders (`ray/tmp`), Ray Train's checkpoints and epoch logs (`ray/results`, `ray/epochs`), in-process
checkpoints and local ONNX copies (`checkpoints/`, `exports/`), and the MLflow store (`mlflow.db` and `artifacts/`,
which keeps every run unless `--keep-versions` sets `retrain.keep_versions`). It also adds up what the housekeeping
deleted, i.e. what the same retrains would have left without it (the pruned versions not counted). (Sessions
younger than ten minutes are never pruned, in case their Ray is starting; here retrains come minutes apart, not a
day, so that grace is set to 0.)
"""

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AREAS = {
    "ray sessions": ("ray/tmp",),
    "Ray Train results": ("ray/results", "ray/epochs"),
    "checkpoints, exports": ("checkpoints", "exports"),
    "MLflow store": ("mlflow.db", "artifacts"),
}


def size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            p = Path(root) / name
            if not p.is_symlink():
                try:
                    total += p.stat().st_size
                except FileNotFoundError:  # a socket or log that went while walking
                    pass
    return total


def sessions(home: Path) -> int:
    from cityagent.training.ray_cluster import ray_temp_dir

    return len(list(ray_temp_dir().glob("session_2*")))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--retrains", type=int, default=8)
    p.add_argument("--keep", type=int, default=2, help="$CITYAGENT_RAY_KEEP_SESSIONS for the run")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--keep-versions", type=int, default=None, help="retrain.keep_versions (default: keep every one)")
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.inside:  # in a process of its own: it sets the environment and wraps the housekeeping
        cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--inside"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        print(done.stdout, end="")
        if done.returncode:
            print(done.stderr[-4000:], file=sys.stderr)
        return done.returncode
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="retrain-disk-") as tmp:
        home = Path(tmp) / "home"
        os.environ.update({"CITYAGENT_HOME": str(home), "CITYAGENT_RAY_KEEP_SESSIONS": str(args.keep)})
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.environ.pop("RAY_ADDRESS", None)
        from cityagent.agent.agent_config import load_agent_config
        from cityagent.agent.retrain import retrain
        from cityagent.hub.synth import synthesize
        from cityagent.training import housekeeping
        from cityagent.training.ray_cluster import ray_temp_dir

        hub = synthesize(home / "hub", sensors=32, zones=9, days=5, seed=3, progress=False)
        cfg = load_agent_config(overrides={"hub": str(hub), "retrain": {"keep_versions": args.keep_versions}})
        overrides = {"train.max_epochs": 1, "train.workers": args.workers}  # configs/traffic.yaml's STID otherwise
        deleted = {"sessions": 0, "files": 0}
        real_prune, real_drop = housekeeping.prune_sessions, housekeeping.drop_training_files

        def prune(temp_dir: Path, keep: int | None) -> list[Path]:
            before = {p: size(p) for p in temp_dir.glob("session_2*")} if temp_dir.is_dir() else {}
            gone = real_prune(temp_dir, keep)
            deleted["sessions"] += sum(before.get(p, 0) for p in gone)
            return gone

        def drop(run_id: str, info: dict) -> list[Path]:
            home_ = Path(os.environ["CITYAGENT_HOME"])
            candidates = [home_ / "checkpoints" / run_id, home_ / "exports" / run_id]
            if info.get("ray_run"):
                folder = Path(info["ray_run"])
                candidates += [folder, home_ / "ray" / "epochs" / f"{folder.name}.jsonl"]
            before = {p: size(p) for p in candidates if p.exists()}
            gone = real_drop(run_id, info)
            deleted["files"] += sum(before.get(p, 0) for p in gone)
            return gone

        housekeeping.prune_sessions, housekeeping.drop_training_files = prune, drop
        housekeeping.START_GRACE_S = 0  # retrains come minutes apart here, not a day: a session ended is prunable
        what = f"{args.retrains} retrains of configs/traffic.yaml (1 epoch), local Ray, {args.workers} worker(s)"
        versions = "every version" if args.keep_versions is None else f"retrain.keep_versions {args.keep_versions}"
        print(f"{what}, keeping {args.keep} earlier sessions and {versions}")
        header = ["#", "s", "sessions", *AREAS, "deleted so far"]
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for i in range(1, args.retrains + 1):
            t0 = time.perf_counter()
            retrain("traffic", cfg, overrides=overrides, say=lambda _: None)
            cells = [str(i), f"{time.perf_counter() - t0:.0f}", str(sessions(home))]
            for parts in AREAS.values():
                paths = [ray_temp_dir() if part == "ray/tmp" else home / part for part in parts]
                cells.append(f"{sum(size(p) for p in paths) / 2**20:.2f} MiB")
            cells.append(f"{(deleted['sessions'] + deleted['files']) / 2**20:.2f} MiB")
            print("| " + " | ".join(cells) + " |", flush=True)
        live = sessions(home)
        if live > args.keep + 1:
            sys.exit(f"{live} Ray session folders remain, more than --keep {args.keep} plus the newest")
        left = sum(size(home / part) for part in ("ray/results", "checkpoints", "exports"))
        print(f"sessions kept: {live}; checkpoints and exports left by judged retrains: {left} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
