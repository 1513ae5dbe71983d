"""Training throughput with 1 vs 2 Ray Train workers, side by side in one run.

    python benchmarks/ray_scaling.py --config configs/traffic.yaml --epochs 3

Both runs train the same task and model through ``cityagent.training.fit`` on one local Ray instance (one CPU per
worker, data-parallel DDP); throughput is training samples × epochs ÷ the train loop's wall time.
"""

import argparse
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "traffic.yaml")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    os.environ.setdefault("CITYAGENT_HOME", tempfile.mkdtemp(prefix="cityagent-scaling-"))

    from cityagent.training.config import load_config
    from cityagent.training.fit import fit

    rows = []
    for n in args.workers:
        cfg = load_config(
            args.config,
            {
                "train.workers": n,
                "train.max_epochs": args.epochs,
                "train.patience": args.epochs,
                "train.batch_size": args.batch_size,
                "tracking.register_model": False,
                "tracking.plots": False,
            },
        )
        result = fit(cfg)
        seconds = float(result.info.get("train_seconds") or result.info.get("seconds"))
        samples = int(result.info.get("train_samples", 0)) or _train_samples(cfg)
        epochs = max(1, len(result.history))
        rows.append((n, epochs, seconds, samples * epochs / seconds))
        print(f"{n} worker(s): {epochs} epochs in {seconds:.1f} s, {rows[-1][3]:.0f} samples/s", flush=True)
    base = rows[0][3]
    print(f"\n`python benchmarks/ray_scaling.py --config {args.config.relative_to(ROOT)} --epochs {args.epochs}`\n")
    print("| Ray workers | epochs | train wall (s) | samples/s | vs 1 worker |")
    print("|---|---|---|---|---|")
    for n, epochs, seconds, rate in rows:
        print(f"| {n} | {epochs} | {seconds:.1f} | {rate:.0f} | {rate / base:.2f}× |")


def _train_samples(cfg: "RunConfig") -> int:  # noqa: F821 - imported lazily
    from cityagent.training.task import load_task

    task, _ = load_task(cfg.task)
    return len(task.train)


if __name__ == "__main__":
    main()
