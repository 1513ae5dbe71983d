"""Model selection for the DiDi Xi'an table on three held-out blocks, never the test split.

    python benchmarks/demand_selection.py                                  # the configured gbrt_demand
    python benchmarks/demand_selection.py --variants '{}' '{"learning_rate": 0.05, "max_iter": 400}'
    python benchmarks/demand_selection.py --refit                          # does refitting on val pay?
    python benchmarks/demand_selection.py --blend stid                     # blend with a deep model? (~15 min)
    python benchmarks/demand_selection.py --quantiles 0.1 0.5 0.9          # intervals: coverage and pinball
    python benchmarks/demand_selection.py --diagnose                       # where the error above noise is
    python benchmarks/demand_selection.py --calendar tod weekend dow_index --variants '{"day_channel": 3, ...}'
    python benchmarks/demand_selection.py --graph corr:4 grid+corr:4       # neighbours by correlation, not the grid
    python benchmarks/demand_selection.py --levels L24 od-dep,L24           # levels over more than 6 hours

The blocks are the validation split and the two blocks of the same length (63 hourly samples) before it. For each
block a model is fitted on the samples before it and scored on it (RMSE in trips); choices are made on the mean over
the three, because the validation split alone holds a city-wide demand drop (22 Nov) that rewards whatever follows
a shock and punishes the rest.

``--refit`` asks whether the final model should also learn the validation split. In the benchmark the test split
starts right after validation, so a model fitted on the training split alone forecasts one validation length
(63 samples, ~2.6 days) past its last example, and a refitted one forecasts right after it. Each block is scored
both ways: fitted on the samples ending 63 before it ("gap"), and on all samples before it ("refit").

``--blend MODEL`` asks whether averaging the configured gbrt_demand with a deep model pays. For each block the deep
model is trained (3 seeds, averaged) on the samples before it, early-stopped on the last 10 % of them, as the UCTB
protocol splits validation, and each blend weight w of the deep model is scored as (1 - w) gbrt + w deep.

``--quantiles`` fits quantile-loss trees per level instead and reports, per block, the coverage of the outermost
interval, the pinball loss and the interval's mean width (the RMSE column is then the median level's).

``--diagnose`` breaks each block's error down: the squared error above a Poisson floor (the forecast itself taken
as the rate), the share of that excess in the 10 busiest cells, the lag-1 autocorrelation of each cell's residuals
(negative: the last hour is trusted too much) and the share of the squared error that is city-wide (the residual's
mean over cells).

``--graph`` swaps the neighbour graph the features pool over (the task's 4-neighbour grid): ``corr:K`` links each
cell to the K cells whose hourly deviations from their own hour-and-weekend mean correlate best with its own, over
the hours before the block (STMeta's correlation graph, the published table's best model), ``grid+corr:K`` adds
those links to the grid, ``raw:K`` correlates the counts themselves (mostly the shared daily cycle).

``--levels`` gives the trees each cell's level over more past hours than the window's 6 closeness frames, against
its usual level: a comma-separated set of ``longer_levels`` kinds per row (``L24``: the last 24 hours; ``half``:
the last complete half-day; ``today``: since midnight; ``od-dep`` / ``od-arr``: trips leaving / reaching the cell
in the last complete half-day, from the archive's OD counts). They enter as extra channels of the last input step.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from cityagent.training.task import TaskData

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


# the deep models a blend may take, with their DiDi settings (STID reads the hour of day and the day of week)
DEEP = {"stid": ("models/stid.yaml", {"task.params.calendar": ["tod", "dow"], "model.params.steps_per_day": 24})}
BLEND_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0)


def deep_block_forecasts(name: str, blocks: list[tuple[int, int]], seeds: tuple[int, ...] = (0, 1, 2)) -> list:
    """Real-unit forecasts ``[B, H, N]`` of deep model ``name`` for each block, trained on the samples before it."""
    from deep_periods import deep_period_forecasts

    from cityagent.training.config import load_config, read_yaml_tree
    from cityagent.training.task import load_task

    model_cfg, overrides = DEEP[name]
    tree = read_yaml_tree(ROOT / "configs" / "datasets" / "didi-xian-uctb.yaml")
    tree |= {k: v for k, v in read_yaml_tree(ROOT / "configs" / model_cfg).items() if k == "model"}
    tree["train"] = {"max_epochs": 40, "patience": 8, "workers": 0, "batch_size": 64, "num_threads": 2}
    task, _ = load_task(load_config(None, overrides, **tree).task)
    anchors = np.concatenate([task.train.anchors, task.val.anchors])  # windows over the same arrays
    periods = [(anchors[:start], anchors[start:stop]) for start, stop in blocks]
    return deep_period_forecasts(tree, overrides, periods, seeds, label=name)


def correlation_graph(series: np.ndarray, slots: np.ndarray, k: int, deviations: bool = True) -> np.ndarray:
    """0/1 ``[N, N]``: each cell's ``k`` best-correlated other cells over ``series [L, N]``, whose hour-and-weekend
    slot is ``slots [L]``; with ``deviations`` each cell's mean per slot is removed first, so the shared daily
    cycle does not make every pair correlate."""
    r = np.asarray(series, dtype=np.float64).copy()
    if deviations:
        for s in np.unique(slots):
            r[slots == s] -= r[slots == s].mean(0)
    r -= r.mean(0)
    z = r / np.where(r.std(0) > 0, r.std(0), 1.0)
    corr = z.T @ z / len(z)
    np.fill_diagonal(corr, -np.inf)
    graph = np.zeros_like(corr)
    np.put_along_axis(graph, np.argsort(-corr, axis=1)[:, :k], 1.0, axis=1)
    return graph


def graph_spec(spec: str) -> tuple[str, int]:
    """``corr:8`` → ``("corr", 8)``; exits naming the forms ``--graph`` takes."""
    kind, _, k = spec.rpartition(":")
    if kind not in ("corr", "grid+corr", "raw") or not k.isdigit() or int(k) < 1:
        raise SystemExit(f"--graph {spec!r}: use grid, corr:K, grid+corr:K or raw:K (K ≥ 1 cells per cell)")
    return kind, int(k)


def block_graph(spec: str, grid: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The neighbour graph ``spec`` (see ``--graph``) from the windows ``x [S, T, N, F]`` (real units, the tod and
    weekend channels 1 and 2, as in the table's task) before a block: their last frames are consecutive hours."""
    if spec == "grid":
        return grid
    kind, k = graph_spec(spec)
    last = x[:, -1]
    slots = np.floor(last[:, 0, 1] * 24 + 0.5).astype(np.int64) % 24 + 24 * (last[:, 0, 2] > 0.5)
    graph = correlation_graph(last[..., 0], slots, k, deviations=kind != "raw")
    return np.maximum(graph, grid) if kind == "grid+corr" else graph


def longer_inputs(task: "TaskData") -> tuple:
    """``(series [T, N], anchors [S], od, first_weekday)`` for ``longer_levels.extra_channels`` over the train and
    validation windows (the series is read only up to each window's last input hour)."""
    from longer_levels import od_half_days

    from cityagent.hub.importers.datasets import known_dataset, shared_data_dir

    times = task.train.times
    if times[0].hour != 0 or (len(times) > 1 and times[1] - times[0] != np.timedelta64(1, "h")):
        raise SystemExit("--levels expects an hourly series starting at midnight (the DiDi task)")
    anchors = np.concatenate([task.train.anchors, task.val.anchors])
    od = od_half_days(shared_data_dir() / known_dataset("didi-xian").path, list(task.nodes))
    return np.nan_to_num(task.train.y.astype(np.float64)), anchors, od, times[0].weekday()


def main() -> int:
    from accuracy import didi_gbrt_task
    from longer_levels import check_kinds, extra_channels

    from cityagent.models import build_model
    from cityagent.training.build import build_params
    from cityagent.training.metrics import median_level, quantile_metrics

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="*", default=["{}"], help="JSON overrides of gbrt_demand's params")
    ap.add_argument("--refit", action="store_true", help="score each block with and without the 63 samples before it")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blend", choices=sorted(DEEP), help="also score blends of each variant with this deep model")
    ap.add_argument("--quantiles", type=float, nargs="+", help="fit these quantile levels and score the intervals")
    ap.add_argument(
        "--calendar",
        nargs="+",
        help="the task's calendar channels instead of the config's, from channel 1 in this order "
        "(e.g. tod weekend dow_index puts dow_index at channel 3, for day_channel: 3)",
    )
    ap.add_argument("--diagnose", action="store_true", help="break each block's error down")
    ap.add_argument("--graph", nargs="+", default=["grid"], help="neighbour graphs: grid, corr:K, grid+corr:K, raw:K")
    ap.add_argument("--levels", nargs="+", default=[""], help="longer levels per row, e.g. L24 od-dep,L24 ('': none)")
    args = ap.parse_args()
    for spec in args.graph:
        if spec != "grid":
            graph_spec(spec)
            if args.calendar and args.calendar[:2] != ["tod", "weekend"]:
                raise SystemExit("--graph corr:K reads tod and weekend from channels 1 and 2: begin --calendar so")
    for spec in args.levels:
        if spec:
            check_kinds(spec)
    cfg, task, (xs, xo, ys, yo) = didi_gbrt_task(args.threads, args.calendar)
    longer = longer_inputs(task) if any(args.levels) else None
    xt, yt, mt = task.train.arrays()
    xv, yv, mv = task.val.arrays()
    x, y, m = np.concatenate([xt, xv]), np.concatenate([yt, yv]), np.concatenate([mt, mv])
    n_val, keep_nodes = len(xv), np.asarray(task.eval_mask, dtype=bool)
    blocks = [(len(x) - k * n_val, len(x) - (k - 1) * n_val) for k in (3, 2, 1)]  # oldest first; last = val
    gaps = {"gap": n_val, "refit": 0} if args.refit else {"": 0}
    base = build_params(task, cfg.model, args.quantiles)
    names = [f"{b}{' ' + g if g else ''}" for b in ("block -2", "block -1", "val") for g in gaps]
    print(f"| variant | {' | '.join(names)} | {' | '.join(f'mean {g}'.strip() for g in gaps)} |")

    def rmse(pred: np.ndarray, start: int, stop: int) -> float:
        err = (pred - y[start:stop])[:, :, keep_nodes]
        return float(np.sqrt(np.mean(err[m[start:stop][:, :, keep_nodes]] ** 2)))

    def intervals(pred: np.ndarray, start: int, stop: int) -> str:
        valid = m[start:stop][:, :, keep_nodes]
        q = pred[:, :, keep_nodes][valid]  # [M, Q]
        scores = quantile_metrics(y[start:stop][:, :, keep_nodes][valid], q, args.quantiles)
        width = float(np.mean(q[:, -1] - q[:, 0]))
        return f"coverage {scores['coverage']:.1f} %, pinball {scores['pinball']:.4f}, mean width {width:.2f}"

    def diagnose(pred: np.ndarray, start: int, stop: int) -> str:
        p, t = pred[:, 0][:, keep_nodes], y[start:stop][:, 0][:, keep_nodes]  # [B, N'] one step ahead
        if not m[start:stop][:, :, keep_nodes].all():
            return "skipped: the block has masked targets"
        e = t - p
        excess = e**2 - np.maximum(p, 0)  # squared error above a Poisson count's variance at rate p
        busiest = np.argsort(t.mean(0))[::-1][:10]
        lag1 = np.nanmean([np.corrcoef(e[1:, i], e[:-1, i])[0, 1] for i in range(e.shape[1]) if e[:, i].std() > 0])
        city = np.mean(e.mean(1) ** 2) / np.mean(e**2)
        return (
            f"MSE {np.mean(e**2):.2f}, above the Poisson floor {excess.mean():.2f}, "
            f"busiest 10 cells' share of that {excess[:, busiest].sum() / excess.sum():.0%}, "
            f"residual lag-1 autocorrelation {lag1:+.3f}, city-wide share of MSE {city:.1%}"
        )

    deep = deep_block_forecasts(args.blend, blocks) if args.blend else None
    runs = [(v, g, lv) for g in args.graph for lv in args.levels for v in args.variants]
    for variant, graph, levels in runs:
        label = variant + ("" if graph == "grid" else f", {graph} graph") + (f", levels {levels}" if levels else "")
        found: dict[str, list[float]] = {g: [] for g in gaps}
        trees = []  # the last gap's forecasts per block, for the blends
        for start, stop in blocks:
            for g, gap in gaps.items():
                fit_end = start - gap
                ok = m[:fit_end].all(axis=(1, 2))
                xr = x * xs + xo
                if levels:  # usual levels from the hours before the first window the model does not learn
                    extra = extra_channels(levels, *longer, fit_end)
                    xr = np.concatenate([xr, np.broadcast_to(extra[:, None], (*xr.shape[:3], extra.shape[-1]))], -1)
                adjacency = block_graph(graph, base["adjacency"], xr[:fit_end])
                params = base | {"adjacency": adjacency, "in_features": xr.shape[-1]} | json.loads(variant)
                model = build_model(cfg.model.name, **params)
                model.fit(xr[:fit_end][ok], y[:fit_end][ok] * ys + yo)
                pred = (model.predict(xr[start:stop]) - yo) / ys
                if args.quantiles:
                    print(f"  {label} {g} [{start}, {stop}): {intervals(pred, start, stop)}", file=sys.stderr)
                    pred = pred[..., median_level(args.quantiles)]
                found[g].append(rmse(pred, start, stop))
                if args.diagnose:
                    print(f"  {label} {g} [{start}, {stop}): {diagnose(pred, start, stop)}", file=sys.stderr)
                print(f"  {label} {g} [{start}, {stop}): {found[g][-1]:.4f}", file=sys.stderr, flush=True)
            trees.append(pred)
        cells = [f"{found[g][b]:.4f}" for b in range(3) for g in gaps]
        means = [f"**{np.mean(found[g]):.4f}**" for g in gaps]
        print(f"| `{label}` | {' | '.join(cells)} | {' | '.join(means)} |", flush=True)
        for w in BLEND_WEIGHTS if deep else ():
            scores = [rmse((1 - w) * t + w * d, a, b) for t, d, (a, b) in zip(trees, deep, blocks, strict=True)]
            cells = " | ".join(f"{v:.4f}" for v in scores)
            print(f"| `{label}`, {w:.0%} {args.blend} | {cells} | {np.mean(scores):.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
