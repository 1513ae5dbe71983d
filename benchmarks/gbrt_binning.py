"""Fit time of a recency-weighted gbrt_demand with and without pre-binning, side by side on DiDi Xi'an.

    python benchmarks/gbrt_binning.py              # the DiDi table's settings, 2 threads, 2 rounds

Each round fits the same model on the training split twice, ``prebin: false`` (scikit-learn bins the weighted
features itself) then ``prebin: true`` (``QuantileBins``), and scores both on the validation split (never test).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> int:
    from accuracy import didi_gbrt_task

    from cityagent.models import build_model
    from cityagent.training.build import build_params

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    cfg, task, (xs, xo, ys, yo) = didi_gbrt_task(args.threads)
    xt, yt, mt = task.train.arrays()
    xv, yv, mv = task.val.arrays()
    ok, keep = mt.all(axis=(1, 2)), np.asarray(task.eval_mask, dtype=bool)
    base = build_params(task, cfg.model, None)
    rows: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for r in range(args.rounds):
        for prebin in (False, True):
            model = build_model(cfg.model.name, **(base | {"prebin": prebin}))
            t0 = time.perf_counter()
            model.fit(xt[ok] * xs + xo, yt[ok] * ys + yo)
            took = time.perf_counter() - t0
            pred = (model.predict(xv * xs + xo) - yo) / ys
            err = (pred - yv)[:, :, keep][mv[:, :, keep]]
            rows[prebin].append((took, float(np.sqrt(np.mean(err**2)))))
            print(f"  round {r} prebin={prebin}: fit {took:.1f} s, val RMSE {rows[prebin][-1][1]:.4f}", file=sys.stderr)
    fit = {p: float(np.median([t for t, _ in v])) for p, v in rows.items()}
    print("| binning | fit s (median) | speed-up | val RMSE |")
    print("|---|---|---|---|")
    for p, name in ((False, "scikit-learn's weighted percentiles"), (True, "`QuantileBins` (prebin)")):
        print(f"| {name} | {fit[p]:.1f} | {fit[False] / fit[p]:.1f}× | {rows[p][0][1]:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
