"""GPU vs CPU: seconds per epoch and the test accuracy reached, same task, model, seed and epochs, in one run.

    python benchmarks/gpu_epoch.py --runs sz-taxi-strict:stid chicago-gsnet:risk_conv --epochs 5

Trains in-process with the Lightning engine (``train.workers=0``; no MLflow, no Ray, so it runs on a bare GPU
machine whose image has torch and Lightning) and prints a Markdown table. ``--accelerators cpu gpu`` picks devices.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
EXTRA = {"stid": {"model.params.steps_per_day": 96}, "risk_conv": {"train.loss": "risk"}}


def run(dataset: str, model: str, accelerator: str, args: argparse.Namespace) -> dict:
    from cityagent.training.build import build_scaled_model
    from cityagent.training.config import load_config, read_yaml_tree
    from cityagent.training.data import predict_split, torch_predictor
    from cityagent.training.local import train_local
    from cityagent.training.scoring import score
    from cityagent.training.task import load_task

    tree = read_yaml_tree(ROOT / "configs" / "datasets" / f"{dataset}.yaml")
    tree["model"] = read_yaml_tree(ROOT / "configs" / "models" / f"{model}.yaml")["model"]
    tree["train"] = {
        "max_epochs": args.epochs,
        "workers": 0,
        "batch_size": args.batch_size,
        "seed": 0,
        "accelerator": accelerator,
        "patience": args.patience or args.epochs,
    }
    cfg = load_config(None, EXTRA.get(model, {}), **tree)
    if accelerator == "cpu":
        torch.set_num_threads(args.cpu_threads)
    task, _ = load_task(cfg.task)
    t0 = time.perf_counter()
    out = train_local(task, cfg, tempfile.mkdtemp(prefix="gpu-epoch-"))
    seconds = time.perf_counter() - t0
    net, _ = build_scaled_model(task, cfg.model, cfg.train.quantiles)
    net.load_state_dict(out.state_dict)
    metrics, _ = score(task, task.test, predict_split(torch_predictor(net.eval()), task.test), cfg.task.domain)
    epochs = max(1, len(out.history))
    return {
        "dataset": dataset,
        "model": model,
        "device": accelerator,
        "epochs": epochs,
        "s_per_epoch": seconds / epochs,
        "train_samples": len(task.train),
        "metrics": metrics,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", default=["sz-taxi-strict:stid", "chicago-gsnet:risk_conv"])
    ap.add_argument("--accelerators", nargs="+", default=["cpu", "gpu"])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--patience", type=int, default=None, help="early stopping (default: run every epoch)")
    ap.add_argument("--json", type=Path, help="append every row's full test metrics here as JSON lines")
    ap.add_argument("--cpu-threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    rows = []
    for item in args.runs:
        dataset, model = item.split(":")
        for acc in args.accelerators:
            r = run(dataset, model, acc, args)
            rows.append(r)
            if args.json:
                with args.json.open("a") as fh:
                    fh.write(json.dumps({k: v for k, v in r.items()}, default=float) + "\n")
            print(
                f"{dataset} {model} {acc}: {r['s_per_epoch']:.2f} s/epoch, test_mae {r['metrics']['mae']:.4f}",
                flush=True,
            )
    print(f"\nGPU: {device}; CPU threads: {args.cpu_threads}; torch {torch.__version__}\n")
    print("| dataset | model | device | epochs | s / epoch | CPU÷GPU | test MAE | test RMSE |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        cpu = next(
            (c for c in rows if c["device"] == "cpu" and c["dataset"] == r["dataset"] and c["model"] == r["model"]),
            None,
        )
        ratio = f"{cpu['s_per_epoch'] / r['s_per_epoch']:.1f}×" if cpu and r["device"] == "gpu" else ""
        m = r["metrics"]
        print(
            f"| {r['dataset']} | {r['model']} | {r['device']} | {r['epochs']} | {r['s_per_epoch']:.2f} | {ratio} "
            f"| {m['mae']:.4f} | {m['rmse']:.4f} |"
        )


if __name__ == "__main__":
    main()
