"""Accuracy on the real public data, under each dataset's published protocol, next to the published numbers.

    python benchmarks/accuracy.py --table sz-tgcn     # SZ-taxi, T-GCN protocol, 15/30/45/60 min
    python benchmarks/accuracy.py --table sz-strict   # SZ-taxi, strict protocol
    python benchmarks/accuracy.py --table didi-uctb   # DiDi Xi'an, UCTB protocol, 60-min RMSE
    python benchmarks/accuracy.py --table chicago     # Chicago risk, GSNet protocol
    python benchmarks/accuracy.py --table all --write # all four, and rewrite the section in BENCHMARKS.md

Every model trains through ``cityagent.training.fit`` (in-process by default; ``--workers 2`` trains on Ray) into a
throw-away CITYAGENT_HOME, then its bundle is scored on the test split with the protocol's metrics.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MARK_BEGIN, MARK_END = "<!-- accuracy:begin -->", "<!-- accuracy:end -->"


def run_settings(name: str) -> dict:
    """What a ``configs/benchmarks`` file sets on top of its defaults, as dotted overrides (tracking left out)."""
    from cityagent.config_yaml import read_yaml

    def dotted(tree: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in tree.items():
            out |= dotted(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
        return out

    tree = read_yaml(ROOT / "configs" / "benchmarks" / f"{name}.yaml")
    return {k: v for k, v in dotted(tree).items() if k.split(".")[0] not in ("defaults", "tracking")}


# (label, config file, overrides) per table; every row is one fit() call.
TGCN_PARAMS = {"task.params.input_len": 12, "task.params.horizon": 4}
# gbrt_demand on DiDi (configs/benchmarks/didi-gbrt-demand.yaml): the UCTB window's groups, HM 1-1-2, the tod and
# weekend channels its hourly profile reads, and the settings chosen on three pre-test blocks
# (benchmarks/demand_selection.py), test unseen
DIDI_GBRT = run_settings("didi-gbrt-demand")
TABLES: dict[str, list[tuple[str, str, dict]]] = {
    "sz-tgcn": [
        ("HA", "models/ha.yaml", TGCN_PARAMS),
        ("GRU", "models/gru.yaml", TGCN_PARAMS),
        ("T-GCN", "models/tgcn.yaml", TGCN_PARAMS),
        (
            "STID",
            "models/stid.yaml",
            TGCN_PARAMS | {"task.params.calendar": ["tod", "dow"], "model.params.steps_per_day": 96},
        ),
        ("Graph WaveNet", "models/gwnet.yaml", TGCN_PARAMS),
    ],
    "sz-strict": [
        ("HA", "models/ha.yaml", {}),
        ("GRU", "models/gru.yaml", {}),
        ("T-GCN", "models/tgcn.yaml", {}),
        ("STID", "models/stid.yaml", {"model.params.steps_per_day": 96}),
        ("Graph WaveNet", "models/gwnet.yaml", {}),
    ],
    "didi-uctb": [
        # UCTB's HM for Xi'an is closeness 1, period 1, trend 2: input frames t, t-1 day, t-1 week, t-2 weeks
        # (the preset's frames are trend 4, period 7, closeness 6, oldest first)
        ("HM (1-1-2)", "models/hm.yaml", {"model.params.frames": [2, 3, 10, 16]}),
        ("GBRT", "models/gbrt.yaml", {"model.params.n_threads": 2}),
        ("ST-GCN demand", "models/st_gcn_demand.yaml", {}),
        # trees on the residual to ½ HM (1-1-2) + ½ each cell's usual hourly level scaled by its recent level
        ("GBRT demand", "models/gbrt_demand.yaml", DIDI_GBRT),
    ],
    "chicago": [
        ("HA (4 weeks)", "models/risk_ha.yaml", {"model.params.frames": [0, 1, 2, 3]}),
        ("GBRT", "models/gbrt.yaml", {"model.params.n_threads": 2}),
        ("risk_conv", "models/risk_conv.yaml", {"train.loss": "risk"}),
        # STID reading GSNet's one-hot hours and weekdays (configs/benchmarks/chicago-stid.yaml)
        ("STID (risk loss)", "models/stid.yaml", run_settings("chicago-stid")),
        # same trees, same ranking: raw P(risk > 0) × mean positive risk vs the calibrated E[risk | risk > 0]
        # refit on train + val: better on all four averages of benchmarks/risk_selection.py --refit
        ("risk_gbrt (uncalibrated)", "models/risk_gbrt.yaml", {"model.params.calibrate": False, "train.refit": True}),
        ("risk_gbrt (calibrated)", "models/risk_gbrt.yaml", run_settings("chicago-risk-gbrt")),
    ],
}
DATASET = {
    "sz-tgcn": "sz-taxi-tgcn",
    "sz-strict": "sz-taxi-strict",
    "didi-uctb": "didi-xian-uctb",
    "chicago": "chicago-gsnet",
}


def didi_gbrt_task(threads: int, calendar: list[str] | None = None) -> tuple:
    """The DiDi table's gbrt_demand config (OpenMP ``threads``; ``calendar`` replaces its task's calendar channels),
    its UCTB task and the scalers as ``(cfg, task, (x_scale, x_offset, y_scale, y_offset))``, for the scripts that
    fit it outside ``fit``."""
    from cityagent.training.config import load_config, read_yaml_tree
    from cityagent.training.task import load_task

    tree = read_yaml_tree(ROOT / "configs" / "datasets" / "didi-xian-uctb.yaml")
    tree |= read_yaml_tree(ROOT / "configs" / "models" / "gbrt_demand.yaml")
    overrides = DIDI_GBRT | {"model.params.n_threads": threads}
    if calendar is not None:
        overrides["task.params.calendar"] = list(calendar)
    cfg = load_config(None, overrides, **tree)
    task, _ = load_task(cfg.task)
    scalers = task.x_scaler.scale, task.x_scaler.offset, float(task.y_scaler.scale[0]), float(task.y_scaler.offset[0])
    return cfg, task, scalers


def run_model(table: str, label: str, model_cfg: str, overrides: dict, args: argparse.Namespace) -> dict:
    """Train one row and return its test predictions, targets and the fit metrics."""
    from cityagent.training.config import load_config, read_yaml_tree
    from cityagent.training.data import predict_split
    from cityagent.training.evaluate import bundle_predictor, load_run
    from cityagent.training.fit import fit
    from cityagent.training.task import load_task

    tree = read_yaml_tree(ROOT / "configs" / "datasets" / f"{DATASET[table]}.yaml")
    tree |= {k: v for k, v in read_yaml_tree(ROOT / "configs" / model_cfg).items() if k == "model"}
    tree["train"] = {
        "max_epochs": args.epochs,
        "workers": args.workers,
        "batch_size": args.batch_size,
        "patience": args.patience,
        "seed": args.seed,
    }
    tree["tracking"] = {"plots": False, "register_model": False, "experiment": f"bench-{table}"}
    cfg = load_config(None, overrides, **tree)
    t0 = time.perf_counter()
    result = fit(cfg)
    seconds = time.perf_counter() - t0
    bundle, cfg, folder = load_run(result.run_id)
    task, _ = load_task(cfg.task)
    pred = predict_split(bundle_predictor(bundle, folder), task.test)
    _, y, observed = task.test.arrays()
    return {
        "label": label,
        "metrics": result.metrics,
        "pred": pred,
        "y": y,
        "observed": observed,
        "task": task,
        "seconds": seconds,
        "epochs": len(result.history),
    }


def tgcn_rows(runs: list[dict]) -> list[str]:
    """T-GCN protocol: metrics over steps 1..h flattened, as the published code reports 15/30/45/60 min."""
    from cityagent.training.metrics import tgcn_metrics

    out = ["| model | horizon | RMSE | MAE | Accuracy | R² | var |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        for h in range(1, r["y"].shape[1] + 1):
            m = tgcn_metrics(r["y"][:, :h], r["pred"][:, :h])
            out.append(
                f"| {r['label']} | {15 * h} min | {m['rmse']:.4f} | {m['mae']:.4f} | {m['accuracy']:.4f} "
                f"| {m['r2']:.4f} | {m['var']:.4f} |"
            )
    return out


def strict_rows(runs: list[dict]) -> list[str]:
    """Strict protocol: each step on its own (15 min = step 1), observed speeds only, T-GCN's five metrics."""
    from cityagent.training.metrics import tgcn_metrics

    out = ["| model | horizon | RMSE | MAE | Accuracy | R² | var | epochs |", "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        for h in range(r["y"].shape[1]):
            m = tgcn_metrics(r["y"][:, h], r["pred"][:, h], r["observed"][:, h])
            out.append(
                f"| {r['label']} | {15 * (h + 1)} min | {m['rmse']:.4f} | {m['mae']:.4f} | {m['accuracy']:.4f} "
                f"| {m['r2']:.4f} | {m['var']:.4f} | {r['epochs']} |"
            )
    return out


def uctb_rows(runs: list[dict]) -> list[str]:
    out = ["| model | test RMSE (trips/h) | vs our HM |", "|---|---|---|"]
    hm = runs[0]["metrics"]["test_rmse"]
    for r in runs:
        rmse = r["metrics"]["test_rmse"]
        out.append(f"| {r['label']} | {rmse:.3f} | {100 * (rmse / hm - 1):+.1f} % |")
    return out


def gsnet_rows(runs: list[dict]) -> list[str]:
    out = ["| model | RMSE | Recall % | MAP | rush RMSE | rush Recall % | rush MAP |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        m = r["metrics"]
        out.append(
            f"| {r['label']} | {m['test_gsnet_rmse']:.4f} | {m['test_recall']:.2f} | {m['test_map']:.4f} | "
            f"{m['test_rush_gsnet_rmse']:.4f} | {m['test_rush_recall']:.2f} | {m['test_rush_map']:.4f} |"
        )
    return out


ROWS = {"sz-tgcn": tgcn_rows, "sz-strict": strict_rows, "didi-uctb": uctb_rows, "chicago": gsnet_rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", choices=[*TABLES, "all"], default="sz-tgcn")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0, help="0 in-process; 2 on a local Ray")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", nargs="*", help="labels to run (default: all of the table)")
    ap.add_argument("--out", type=Path, help="also write the Markdown to this file")
    args = ap.parse_args()
    os.environ.setdefault("CITYAGENT_HOME", tempfile.mkdtemp(prefix="cityagent-bench-"))
    tables = list(TABLES) if args.table == "all" else [args.table]
    lines = []
    for table in tables:
        runs = []
        for label, model_cfg, overrides in TABLES[table]:
            if args.only and label not in args.only:
                continue
            print(f"[{table}] training {label} ...", flush=True)
            runs.append(run_model(table, label, model_cfg, overrides, args))
            print(f"[{table}] {label}: {runs[-1]['seconds']:.0f} s, {runs[-1]['epochs']} epochs", flush=True)
        cmd = f"python benchmarks/accuracy.py --table {table} --epochs {args.epochs} --workers {args.workers}"
        lines += [f"#### {table}", "", f"`{cmd}`", "", *ROWS[table](runs), ""]
        print("\n".join(lines[-len(runs) * (4 if table.startswith("sz") else 1) - 3 :]), flush=True)
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)
    np.seterr(all="ignore")
    return 0


if __name__ == "__main__":
    sys.exit(main())
