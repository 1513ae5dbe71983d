"""A run's test metrics as `cityagent train | tune | evaluate` print them: the headline numbers and a few lead
times, not every per-horizon metric (MLflow keeps those, and ``cityagent evaluate RUN_ID`` prints them)."""

import math
import re
from collections.abc import Mapping
from pathlib import Path

from rich.padding import Padding
from rich.table import Table

from cityagent import durations
from cityagent.agent.console import console
from cityagent.downloads import quiet_downloads
from cityagent.hub.hub import lead_text

PER_HORIZON = re.compile(r"^(?P<name>.+)_h(?P<h>\d+)$")  # mae_h3: the MAE of the third horizon step
POINT = ("mae", "rmse", "mape")
RANKING = ("gsnet_rmse", "recall", "map")  # risk: GSNet's RMSE, Recall@K and MAP@K, also over rush hours
INDENT = 2  # under the "trained ..." line
LEADS_MIN = (15, 30, 60)  # the lead times a compact table shows, when the task's step reaches them
LABELS = {
    "mae": "MAE",
    "rmse": "RMSE",
    "mape": "MAPE",
    "gsnet_rmse": "GSNet RMSE",
    "recall": "Recall@K",
    "map": "MAP@K",
    "r2": "R²",
    "var": "explained var",
}
PERCENT = {"mape", "recall", "coverage"}  # metrics in % (T-GCN's accuracy is a fraction)


def label(name: str, percent_sign: bool = True) -> str:
    """``recall`` → ``Recall@K %``; ``tgcn_r2`` → ``T-GCN R²`` (the T-GCN protocol's own metrics)."""
    base = name.removeprefix("tgcn_")
    text = ("T-GCN " if base != name else "") + LABELS.get(base, base)
    return f"{text} %" if percent_sign and base in PERCENT else text


def split_metrics(metrics: Mapping[str, float]) -> tuple[dict[str, float], dict[int, dict[str, float]]]:
    """``(headline, per_horizon)``: ``test_mae`` → ``headline["mae"]``, ``test_mae_h3`` → ``per_horizon[3]["mae"]``."""
    headline: dict[str, float] = {}
    per_h: dict[int, dict[str, float]] = {}
    for key, value in metrics.items():
        name = key.removeprefix("test_")
        m = PER_HORIZON.match(name)
        if m:
            per_h.setdefault(int(m["h"]), {})[m["name"]] = value
        else:
            headline[name] = value
    return headline, dict(sorted(per_h.items()))


def run_facts(bundle_path: str | None) -> tuple[dict[int, float], str | None]:
    """``({horizon step: lead minutes}, units)`` from the run's bundle metadata (fetched when the store is a tracking
    server, so team runs print lead times too); empty when unreadable."""
    if not bundle_path:
        return {}, None
    try:
        import tempfile

        import torch

        with tempfile.TemporaryDirectory() as tmp:
            if not Path(bundle_path).is_file():  # an artifact URI (mlflow-artifacts:/…, s3://…): fetched once
                import mlflow

                with quiet_downloads():
                    bundle_path = mlflow.artifacts.download_artifacts(artifact_uri=bundle_path, dst_path=tmp)
            meta = torch.load(bundle_path, map_location="cpu", weights_only=True)["meta"]
    except Exception:  # labels only: without them the table names horizon steps (h3) instead of lead times
        return {}, None
    return meta_facts(meta)


def meta_facts(meta: Mapping) -> tuple[dict[int, float], str | None]:
    """``({horizon step: lead minutes}, units)`` from a bundle's metadata; empty when it lacks them."""

    try:
        step = durations.step_delta(meta["step"]).total_seconds() / 60
        return {i + 1: off * step for i, off in enumerate(meta["target_offsets"])}, meta.get("units")
    except (KeyError, TypeError, ValueError):
        return {}, None


def pick_horizons(steps: list[int], leads: Mapping[int, float]) -> list[int]:
    """The horizon steps a compact table shows: those at 15, 30 and 60 minutes ahead, else the first, middle and
    last; all of them when there are three or fewer, none when there is one (the "all" row says it)."""
    if len(steps) <= 1:
        return []
    if len(steps) <= 3:
        return steps
    chosen = [h for h in steps if leads.get(h) in LEADS_MIN]
    return chosen if len(chosen) >= 2 else sorted({steps[0], steps[(len(steps) - 1) // 2], steps[-1]})


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _decimals(column: list[float | None]) -> int:
    """Four significant digits of the column's largest value, the same decimals down the column so they line up."""
    largest = max((abs(v) for v in column if _finite(v) and v != 0), default=1.0)
    return min(max(3 - math.floor(math.log10(largest)), 0), 6)


def _say(renderable: Table | str) -> None:
    if isinstance(renderable, str):  # one line however narrow the terminal: commands in it stay whole to copy
        console.print(" " * INDENT + renderable, highlight=False, soft_wrap=True)
    else:
        console.print(Padding.indent(renderable, INDENT))


def _table(header: str, names: list[str], rows: list[tuple[str, list[float | None]]]) -> Table:
    """A borderless table: one column per metric name, one row per ``(label, values)``."""
    table = Table(box=None, pad_edge=False, padding=(0, 2), header_style="bold")
    table.add_column(header)
    for name in names:
        table.add_column(label(name), justify="right")
    places = [_decimals([values[i] for _, values in rows]) for i in range(len(names))]
    for row, values in rows:
        table.add_row(row, *(f"{v:,.{d}f}" if _finite(v) else "–" for v, d in zip(values, places, strict=True)))
    return table


def print_metrics(
    metrics: Mapping[str, float],
    leads: Mapping[int, float] | None = None,
    units: str | None = None,
    every_horizon: bool = False,
) -> None:
    """The test metrics as small tables: point metrics for a few lead times and over all of them, risk's ranking
    metrics over all and rush hours, then any other headline metric on one line.

    Args:
        metrics: ``{"test_mae": ..., "test_mae_h1": ..., ...}`` as ``fit`` and ``evaluate_run`` return them.
        leads: horizon step → minutes ahead (labels the rows ``15 min (h3)``; default: ``h3``).
        units: what MAE and RMSE are in (km/h), printed under the table.
        every_horizon: a row for every horizon step, not a few.
    """
    leads = leads or {}
    headline, per_h = split_metrics(metrics)
    steps = list(per_h) if every_horizon and len(per_h) > 1 else pick_horizons(list(per_h), leads)
    point = [n for n in POINT if n in headline]
    if point:
        rows = [
            (f"{lead_text(leads[h])} (h{h})" if h in leads else f"h{h}", [per_h[h].get(n) for n in point])
            for h in steps
        ]
        rows.append((f"all {len(per_h)} steps" if len(per_h) > 1 else "all", [headline[n] for n in point]))
        _say(_table("test", point, rows))
        if units and ("mae" in point or "rmse" in point):
            _say(f"[dim]MAE and RMSE in {units}[/]")
    rush = [n.removeprefix("rush_") for n in headline if n.startswith("rush_")]
    ranking = [n for n in RANKING if n in headline] + [n for n in rush if n not in RANKING and n in headline]
    if ranking:
        rows = [("all hours", [headline[n] for n in ranking])]
        if rush:
            rows.append(("rush hours", [headline.get(f"rush_{n}") for n in ranking]))
        _say(_table("ranking", ranking, rows))
    shown = set(point) | set(ranking) | {f"rush_{n}" for n in ranking}
    rest = [(n, v) for n, v in sorted(headline.items()) if n not in shown]
    if rest:
        _say("also: " + " · ".join(f"{label(n, False)} {v:.4g}{' %' if n in PERCENT else ''}" for n, v in rest))


def print_run_metrics(metrics: Mapping[str, float], run_id: str, bundle_path: str | None = None) -> None:
    """The compact tables of a fresh run, and where its every per-horizon metric is."""
    leads, units = run_facts(bundle_path)
    print_metrics(metrics, leads, units)
    _, per_h = split_metrics(metrics)
    if len(per_h) > 1:
        _say(
            f"[dim]per-horizon metrics of all {len(per_h)} steps: MLflow run {run_id} (metrics, and the artifact "
            f"metrics/per_horizon.csv); `cityagent evaluate {run_id}` prints them[/]"
        )
