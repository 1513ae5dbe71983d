"""Model selection for the Chicago risk table on two held-out periods, never the test split.

    python benchmarks/risk_selection.py                      # the default variants of risk_gbrt
    python benchmarks/risk_selection.py --variants '{"cells": 100}' '{"cells": 50}'
    python benchmarks/risk_selection.py --refit --variants '{"cells": 50}' --blend stid   # with a deep model? (~25 min)

Period A: train on the first 80 % of the training windows, score the last 20 %. Period B: train on all training
windows, score the validation split. Both periods are ~3 weeks, so one period's Recall / MAP is noisy (±1 point
between near-identical models); choices are made on the average. Ranking metrics only: the calibration does not
change them.

``--refit`` asks whether the final model should also learn the validation split (``train.refit``): each period is
scored by a model whose windows end one validation length before it ("gap", as for test without a refit) and by
one whose windows end right before it ("refit").

``--blend stid`` asks whether mixing the trees' ranking with a deep model's pays: for each period STID
(``configs/benchmarks/chicago-stid.yaml``, one seed) is trained on the same windows as the trees, early-stopped on
the newest 10 % of them, and each cell's rank within its hour is mixed, ``(1 - w)`` trees + ``w`` STID.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
KEYS = ("recall", "map", "rush_recall", "rush_map")
BLEND_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)


def hour_ranks(score: np.ndarray) -> np.ndarray:
    """Each cell's rank within its hour, scaled to [0, 1] (ties in input order): ``[S, ..., N]`` → same shape."""
    return np.argsort(np.argsort(score, axis=-1, kind="stable"), axis=-1) / (score.shape[-1] - 1)


def main() -> int:
    from cityagent.models import build_model
    from cityagent.training.build import build_params
    from cityagent.training.config import load_config, read_yaml_tree
    from cityagent.training.risk_metrics import gsnet_metrics
    from cityagent.training.task import load_task

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="*", default=['{"cells": 100}', '{"cells": 50}'], help="JSON param overrides")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--baselines", action="store_true", help="also rank by per-cell mean risk (train; and oracle)")
    ap.add_argument("--refit", action="store_true", help="score each period with and without the windows before it")
    ap.add_argument("--blend", choices=["stid"], help="also score rank blends of each variant with this deep model")
    args = ap.parse_args()
    tree = read_yaml_tree(ROOT / "configs" / "datasets" / "chicago-gsnet.yaml")
    tree |= read_yaml_tree(ROOT / "configs" / "models" / "risk_gbrt.yaml")
    cfg = load_config(None, {}, **tree)
    task, _ = load_task(cfg.task)
    xs, xo = task.x_scaler.scale, task.x_scaler.offset
    ys, yo = float(task.y_scaler.scale[0]), float(task.y_scaler.offset[0])
    split = {n: getattr(task, n) for n in ("train", "val")}
    arrays = {n: s.arrays()[:2] for n, s in split.items()}
    hours = {n: s.ts.hour.to_numpy() for n, s in split.items()}
    (xt, yt), (xv, yv) = arrays["train"], arrays["val"]
    cut = int(len(xt) * 0.8)
    periods = {"A": (xt[:cut], yt[:cut], xt[cut:], yt[cut:], hours["train"][cut:]), "B": (xt, yt, xv, yv, hours["val"])}
    base = build_params(task, cfg.model, None) | {"n_threads": args.threads, "calibrate": False}
    print(f"| variant | {' | '.join(f'{p} {k}' for p in (*periods, 'avg') for k in KEYS)} |")

    def row(name: str, found: list[list[float]]) -> None:
        rows = [*found, list(np.mean(found, axis=0))]
        text = [f"{v:.4f}" if "map" in k else f"{v:.2f}" for r in rows for k, v in zip(KEYS, r, strict=True)]
        print(f"| {name} | {' | '.join(text)} |", flush=True)

    def ranked(score: np.ndarray, y_eval: np.ndarray, h_eval: np.ndarray) -> list[float]:
        m = gsnet_metrics(y_eval, score, task.eval_mask, h_eval, task.extra["rush_hours"])
        return [m[k] for k in KEYS]

    if args.baselines:  # a static ranking: the same cell order every hour
        for name, source in (("cell mean of the fitted windows", 1), ("oracle: cell mean of the scored period", 3)):
            found = []
            for p in periods.values():
                mean = np.broadcast_to(p[source].mean(axis=0, keepdims=True), p[3].shape)
                found.append(ranked(mean + 0.0, p[3], p[4]))
            row(name, found)
    deep = None
    if args.blend:  # the deep model learns from the same windows the trees do (the last gap's, "refit" if asked)
        from deep_periods import deep_period_forecasts

        at = {"train": task.train.anchors, "val": task.val.anchors}
        fits = {"A": (at["train"][:cut], at["train"][cut:]), "B": (at["train"], at["val"])}
        tree = read_yaml_tree(ROOT / "configs" / "benchmarks" / "chicago-stid.yaml")
        tree["train"] = tree.get("train", {}) | {"max_epochs": 40, "patience": 8, "workers": 0, "num_threads": 2}
        deep = deep_period_forecasts(tree, {}, list(fits.values()), seeds=(0,), label=args.blend)
    gaps = {"gap": len(xv), "refit": 0} if args.refit else {"": 0}
    for variant in args.variants:
        for name, gap in gaps.items():
            found, scores = [], []
            for x_fit, y_fit, x_eval, y_eval, h_eval in periods.values():
                model = build_model(cfg.model.name, **(base | json.loads(variant)))
                model.fit(x_fit[: len(x_fit) - gap] * xs + xo, y_fit[: len(y_fit) - gap] * ys + yo)
                score = model.score(x_eval * xs + xo)[:, None]  # [S, 1, N]; only its per-hour order matters here
                found.append(ranked(score, y_eval, h_eval))
                scores.append(score)
            row(f"{variant} {name}".strip(), found)
        for w in BLEND_WEIGHTS if deep is not None else ():  # `scores` holds the last gap's: the deep model's windows
            mixed = [(1 - w) * hour_ranks(t) + w * hour_ranks(d) for t, d in zip(scores, deep, strict=True)]
            found = [ranked(m, p[3], p[4]) for m, p in zip(mixed, periods.values(), strict=True)]
            row(f"{variant} {name}, {w:.0%} {args.blend}".strip(), found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
