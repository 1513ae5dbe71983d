"""Act: turn forecasts into decisions and append them to the hub's ``decisions`` table.

One rule per domain, picked by name (``DECIDERS``): congestion alerts where forecast speed falls below a share of
free-flow speed, rebalancing moves from zones expected below their usual demand to zones expected above it,
and the top-K accident-risk cells over the next hour. Each decision is stamped with the time it was made and the
model name and version that forecast it and the anchor of the window it came from (``anchor``: its last input step),
so the agent can tell from the hub itself which windows it already decided (``decided_windows``); the table is only
ever appended to.

With a quantile model each rule can decide on its interval instead of the median (``alerts.intervals``):
``confident`` acts only when the whole interval agrees (the end of it least in favour of the event: the upper speed
for congestion, the lower demand for a surge, the lower risk for a hotspot), ``possible`` when any of it does, and
every decision's detail quotes the interval.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cityagent import durations
from cityagent.agent.agent_config import AlertConfig
from cityagent.agent.compact import compact_due
from cityagent.agent.partfiles import write_part
from cityagent.agent.sense import Window
from cityagent.agent.think import Forecast
from cityagent.errors import CityAgentError, HubError
from cityagent.hub.feature_facts import channel_bounds
from cityagent.hub.hub import MANIFEST, Hub
from cityagent.hub.schema import TABLES
from cityagent.hub.tensor import time_grid, to_tensor
from cityagent.hub.validate import validate_hub

COLUMNS = TABLES["decisions"].names
Decider = Callable[[Forecast, Window, Hub, AlertConfig], list[dict]]


def _span(times: pd.DatetimeIndex) -> str:
    return f"{times[0]:%m-%d %H:%M}–{times[-1]:%H:%M}"


def decided_on(fc: Forecast, cfg: AlertConfig, event_when_high: bool) -> np.ndarray:
    """``[H, N]`` the forecast a rule decides on: the median, or with a quantile model the end of its interval that
    makes the rule's event least likely (``confident``) or most likely (``possible``)."""
    if cfg.intervals == "median" or fc.lower is None or fc.upper is None:
        return fc.values
    return fc.lower if (cfg.intervals == "confident") == event_when_high else fc.upper


def interval_note(fc: Forecast, lower: float, upper: float, unit: str) -> str:
    """`` (10–90 % interval a–b unit)`` for a quantile model's forecast; empty for a point model."""
    if fc.band is None:
        return ""
    lo, hi = fc.band
    level = f"{lo:.0%}–{hi:.0%} interval" if np.isfinite([lo, hi]).all() else "interval"
    return f" ({level} {lower:.1f}–{upper:.1f}{unit})"


def congestion_alerts(fc: Forecast, window: Window, hub: Hub, cfg: AlertConfig) -> list[dict]:
    """Road segments whose lowest forecast speed falls below ``congestion_share`` of their free-flow speed."""
    nodes = window.facts.nodes
    free = pd.Series(np.nan, index=nodes)
    if hub.has("sensors") and "free_flow" in hub.table("sensors"):
        s = hub.table("sensors")
        free = s.set_index(s["sensor_id"].astype(str))["free_flow"].reindex(nodes).astype(float)
    limit = np.where(np.isfinite(free.to_numpy()), cfg.congestion_share * free.to_numpy(), cfg.congestion_kmh)  # [N]
    speed = decided_on(fc, cfg, event_when_high=False)  # [H, N] km/h
    low = speed.min(axis=0)  # [N] km/h
    when = speed.argmin(axis=0)  # [N] horizon step of the lowest speed
    rows = []
    for n in np.flatnonzero(low < limit):
        f = free.iloc[n]
        why = (
            f"{cfg.congestion_share:.0%} of free-flow {f:.0f} km/h"
            if np.isfinite(f)
            else f"{cfg.congestion_kmh:g} km/h"
        )
        rows.append(
            dict(
                kind="congestion_alert",
                target_id=nodes[n],
                value=float(low[n]),
                detail=f"forecast {fc.values[when[n], n]:.1f} km/h at {window.target_times[when[n]]:%m-%d %H:%M}"
                + (interval_note(fc, fc.lower[when[n], n], fc.upper[when[n], n], " km/h") if fc.band else "")
                + f" (< {why})",
            )
        )
    return rows


def usual_demand(hub: Hub, window: Window, days: int) -> np.ndarray:
    """``[H, N]`` each zone's mean departures at the target steps' time of day over the last ``days`` days."""
    facts, anchor = window.facts, window.anchor
    grid = time_grid(hub.meta, anchor - pd.Timedelta(days=days), anchor)
    df = hub.table("demand")
    keep = (df["ts"] >= grid[0]) & (df["ts"] <= grid[-1]) & df["zone_id"].astype(str).isin(facts.nodes)
    if not keep.any():
        return np.full((len(window.target_times), len(facts.nodes)), np.nan)
    sub = Hub({"demand": df[keep].reset_index(drop=True)}, hub.meta)
    past = to_tensor(sub, "demand", [facts.target], nodes=facts.nodes, index=grid).values[:, :, 0]  # [T, N]
    tod = grid.hour * 60 + grid.minute
    out = np.full((len(window.target_times), len(facts.nodes)), np.nan)
    for h, t in enumerate(window.target_times):
        same = past[tod == t.hour * 60 + t.minute]  # [days, N]
        seen = np.isfinite(same).any(axis=0)
        out[h, seen] = np.nanmean(same[:, seen], axis=0)
    return out


def rebalancing(fc: Forecast, window: Window, hub: Hub, cfg: AlertConfig) -> list[dict]:
    """Moves from zones forecast below their usual demand to zones forecast ``demand_surge`` times above it."""
    nodes, times = window.facts.nodes, window.target_times
    usual = usual_demand(hub, window, cfg.usual_days)  # [H, N]
    known = np.isfinite(usual).all(axis=0)
    demand = decided_on(fc, cfg, event_when_high=True)  # [H, N]
    want, have = demand.sum(axis=0), np.where(known, usual.sum(axis=0), np.nan)  # [N] departures over H
    short = [n for n in np.argsort(-(want - have)) if known[n] and want[n] >= cfg.demand_surge * max(have[n], 1e-9)]
    spare = {n: have[n] - want[n] for n in np.argsort(want - have) if known[n] and have[n] - want[n] >= 1}
    rows = []
    for dst in short:
        need = want[dst] - have[dst]
        peak = times[int(np.argmax(demand[:, dst] - usual[:, dst]))]
        moves = []
        for src in list(spare):
            k = int(min(need, spare[src]))
            if k < 1:
                continue
            moves.append((src, k))
            need, spare[src] = need - k, spare[src] - k
            if spare[src] < 1:
                del spare[src]
            if need < 1:
                break
        why = f"forecast {fc.values[:, dst].sum():.0f} vs usual {have[dst]:.0f} departures over {_span(times)}"
        if fc.band:  # the bounds summed over the horizon: a band for the total, not its exact quantiles
            why += interval_note(fc, fc.lower[:, dst].sum(), fc.upper[:, dst].sum(), "")
        for src, k in moves or [(None, int(np.ceil(want[dst] - have[dst])))]:
            origin = f"from {nodes[src]}" if src is not None else "from outside (no zone has spare vehicles)"
            rows.append(
                dict(
                    kind="rebalance",
                    target_id=nodes[dst],
                    value=float(k),
                    detail=f"move {k} vehicle(s) {origin} to {nodes[dst]} before {peak:%m-%d %H:%M}: {why}",
                )
            )
    return rows


def risk_hotspots(fc: Forecast, window: Window, hub: Hub, cfg: AlertConfig) -> list[dict]:
    """The ``risk_top_k`` cells with the highest forecast risk (summed severity) over the next ``risk_window``."""
    facts, times = window.facts, window.target_times
    ahead = times < window.anchor + durations.duration(cfg.risk_window, "alerts.risk_window") + pd.Timedelta("1ns")
    values = decided_on(fc, cfg, event_when_high=True)
    risk = values[ahead].sum(axis=0)  # [N]
    cells = np.flatnonzero(risk > 0)
    if facts.eval_mask is not None:
        cells = cells[np.asarray(facts.eval_mask, dtype=bool)[cells]]
    top = cells[np.argsort(-risk[cells], kind="stable")][: cfg.risk_top_k]
    rows = []
    for rank, n in enumerate(top, 1):
        peak = float(values[ahead, n].max())
        flag = "hotspot: " if peak >= cfg.risk_hotspot else ""
        note = interval_note(fc, fc.lower[ahead, n].sum(), fc.upper[ahead, n].sum(), "") if fc.band else ""
        rows.append(
            dict(
                kind="risk_hotspot",
                target_id=facts.nodes[n],
                value=float(risk[n]),
                detail=f"{flag}rank {rank} of the riskiest cells over {_span(times[ahead])} (peak {peak:.3f} per step)"
                + note,
            )
        )
    return rows


DECIDERS: dict[str, Decider] = {"traffic": congestion_alerts, "demand": rebalancing, "risk": risk_hotspots}


def check_plausible(fc: Forecast, window: Window) -> None:
    """Refuse to decide from a forecast far outside what its target can be (a speed of 1e37 km/h from a corrupted
    model): decisions are never rewritten, so a broken model must not write any. Slightly out of range (a demand of
    -0.2) is an ordinary forecast error and passes."""
    bounds = channel_bounds(window.facts.target)
    if bounds is None:
        return
    lo, hi = bounds
    span = hi - lo
    values = fc.values[np.isfinite(fc.values)]
    bad = values[(values < lo - span) | (values > hi + span)]
    if bad.size:
        raise CityAgentError(
            f"model {fc.model} v{fc.version} forecast {window.facts.target} {bad[0]:g}, far outside its valid range "
            f"{lo:g} to {hi:g}: the model is broken (a corrupted or wrongly exported file?); no decisions were made "
            "from it. Roll it back (`cityagent models rollback`) and re-export its run"
        )


def decide(fc: Forecast, window: Window, hub: Hub, cfg: AlertConfig, now: pd.Timestamp) -> pd.DataFrame:
    """The decisions for one forecast as rows of the ``decisions`` table, stamped ``now``, the model and the window."""
    check_plausible(fc, window)
    rows = DECIDERS[window.facts.domain](fc, window, hub, cfg)
    df = pd.DataFrame(rows, columns=["kind", "target_id", "value", "detail"])
    df.insert(0, "ts", pd.Series([now] * len(df), dtype=f"datetime64[ns, {hub.meta.timezone}]"))
    df["value"] = df["value"].astype(np.float64)
    anchor = window.anchor.tz_convert(hub.meta.timezone).isoformat()
    return df.assign(model=fc.model, model_version=fc.version, anchor=anchor)[COLUMNS]


@dataclass(frozen=True)
class Decided:
    """Decisions already in the hub for one (model, window): how many rows, from which version(s)."""

    rows: int
    versions: str


def decided_windows(hub: Hub) -> dict[tuple[str, pd.Timestamp], Decided]:
    """``(model, anchor in UTC) → Decided`` for every window the hub's ``decisions`` table holds decisions of.

    Rows written before decisions carried an ``anchor`` (older hubs) match no window.
    """
    if not hub.has("decisions"):
        return {}
    df = hub.table("decisions")
    if "anchor" not in df or "model" not in df:
        return {}
    anchor = pd.to_datetime(df["anchor"], utc=True, format="ISO8601", errors="coerce")
    keep = anchor.notna() & df["model"].notna()
    version = df["model_version"].astype(str) if "model_version" in df else pd.Series("?", index=df.index)
    sub = pd.DataFrame({"model": df["model"].astype(str), "anchor": anchor, "version": version})[keep]
    return {
        (model, at): Decided(len(g), ", ".join(f"v{v}" for v in dict.fromkeys(g["version"])))
        for (model, at), g in sub.groupby(["model", "anchor"], sort=False)
    }


def append_decisions(hub_dir: str | Path, hub: Hub, decisions: pd.DataFrame) -> Path | None:
    """Append ``decisions`` to ``<hub>/decisions/date=<local date>/`` as a new part; None when there are none."""
    if decisions.empty:
        return None
    root = Path(hub_dir)
    if "://" in str(hub_dir) or not (root / MANIFEST).is_file():
        raise HubError(f"{hub_dir} is not a local hub directory with {MANIFEST}; the agent appends decisions there")
    report = validate_hub(Hub({"decisions": decisions}, hub.meta))
    if not report.ok:
        raise HubError(f"the agent made decisions that break the table contract: {report.errors[0]}")
    date = decisions["ts"].iloc[0].tz_convert(hub.meta.timezone).date().isoformat()
    path = write_part(root / "decisions" / f"date={date}", decisions.reset_index(drop=True))
    compact_due(root, "decisions", [date])  # the part may be merged into a compacted one, its rows kept
    return path
