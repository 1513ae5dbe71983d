"""Model selection for the DiDi Xi'an table on three held-out blocks, never the test split.

    python benchmarks/demand_selection.py                                  # the configured gbrt_demand
    python benchmarks/demand_selection.py --variants '{}' '{"learning_rate": 0.05, "max_iter": 400}'
    python benchmarks/demand_selection.py --refit                          # does refitting on val pay?

The blocks are the validation split and the two blocks of the same length (63 hourly samples) before it. For each
block a model is fitted on the samples before it and scored on it (RMSE in trips); choices are made on the mean over
the three, because the validation split alone holds a city-wide demand drop (22 Nov) that rewards whatever follows
a shock and punishes the rest.

``--refit`` asks whether the final model should also learn the validation split. In the benchmark the test split
starts right after validation, so a model fitted on the training split alone forecasts one validation length
(63 samples, ~2.6 days) past its last example, and a refitted one forecasts right after it. Each block is scored
both ways: fitted on the samples ending 63 before it ("gap"), and on all samples before it ("refit").
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> int:
    from accuracy import didi_gbrt_task

    from cityagent.models import build_model
    from cityagent.training.build import build_params

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="*", default=["{}"], help="JSON overrides of gbrt_demand's params")
    ap.add_argument("--refit", action="store_true", help="score each block with and without the 63 samples before it")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    cfg, task, (xs, xo, ys, yo) = didi_gbrt_task(args.threads)
    xt, yt, mt = task.train.arrays()
    xv, yv, mv = task.val.arrays()
    x, y, m = np.concatenate([xt, xv]), np.concatenate([yt, yv]), np.concatenate([mt, mv])
    n_val, keep_nodes = len(xv), np.asarray(task.eval_mask, dtype=bool)
    blocks = [(len(x) - k * n_val, len(x) - (k - 1) * n_val) for k in (3, 2, 1)]  # oldest first; last = val
    gaps = {"gap": n_val, "refit": 0} if args.refit else {"": 0}
    base = build_params(task, cfg.model, None)
    names = [f"{b}{' ' + g if g else ''}" for b in ("block -2", "block -1", "val") for g in gaps]
    print(f"| variant | {' | '.join(names)} | {' | '.join(f'mean {g}'.strip() for g in gaps)} |")
    for variant in args.variants:
        found: dict[str, list[float]] = {g: [] for g in gaps}
        for start, stop in blocks:
            for g, gap in gaps.items():
                fit_end = start - gap
                ok = m[:fit_end].all(axis=(1, 2))
                model = build_model(cfg.model.name, **(base | json.loads(variant)))
                model.fit(x[:fit_end][ok] * xs + xo, y[:fit_end][ok] * ys + yo)
                pred = (model.predict(x[start:stop] * xs + xo) - yo) / ys
                err = (pred - y[start:stop])[:, :, keep_nodes]
                valid = m[start:stop][:, :, keep_nodes]
                found[g].append(float(np.sqrt(np.mean(err[valid] ** 2))))
                print(f"  {variant} {g} [{start}, {stop}): {found[g][-1]:.4f}", file=sys.stderr, flush=True)
        cells = [f"{found[g][b]:.4f}" for b in range(3) for g in gaps]
        means = [f"**{np.mean(found[g]):.4f}**" for g in gaps]
        print(f"| `{variant}` | {' | '.join(cells)} | {' | '.join(means)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
