"""Pieces several protocols share: table choice, calendar channels, the task graph, day length, masks."""

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cityagent.errors import ConfigError, HubError
from cityagent.hub.calendar import calendar_features
from cityagent.hub.graph import adjacency_from_coords, adjacency_from_edges, grid_adjacency
from cityagent.hub.grid import node_grid
from cityagent.hub.hub import Hub, HubMeta
from cityagent.hub.windows import Split, WindowSpec, make_split

DEFAULT_TARGET = {"traffic": "speed", "demand": "count", "incidents": "severity"}
PREFERRED_EDGE_KINDS = ("road", "neighbor", "line")


def pick_table(hub: Hub, table: str | None) -> str:
    """``table`` if given, else the hub's only forecastable table (traffic, demand or incidents)."""
    if table is not None:
        hub.table(table)
        return table
    present = [t for t in DEFAULT_TARGET if hub.has(t)]
    if len(present) != 1:
        raise ConfigError(
            f"the hub has {present or 'no'} forecastable tables; pass table= (one of {list(DEFAULT_TARGET)})"
        )
    return present[0]


def with_calendar(
    values: np.ndarray, ts: pd.DatetimeIndex, kinds: Sequence[str], holidays: Sequence[str] = ()
) -> tuple[np.ndarray, list[str]]:
    """``values [T, N, C]`` with calendar columns appended to every node: ``[T, N, C + K]`` and the K names."""
    if not kinds:
        return values, []
    feats, names = calendar_features(ts, kinds, holidays)  # [T, K]
    t, n, _ = values.shape
    cal = np.broadcast_to(feats[:, None, :], (t, n, feats.shape[1]))  # [T, N, K]
    return np.concatenate([values, cal], axis=-1).astype(np.float32), names


def slots_per_day(meta: HubMeta) -> int:
    """Steps in one day: ``extra['slots_per_day']`` (operating hours) or 24 h / step."""
    if meta.extra.get("slots_per_day"):
        return int(meta.extra["slots_per_day"])
    per_day = pd.Timedelta("1D") / meta.step_delta
    if per_day != int(per_day):
        raise ConfigError(f"step {meta.step} does not divide a day; daily/weekly windows need one that does")
    return int(per_day)


def node_table(hub: Hub, nodes: Sequence[str]) -> pd.DataFrame | None:
    """The static table (sensors or zones) indexed by id in ``nodes`` order, if it holds all the nodes."""
    for name, key in (("sensors", "sensor_id"), ("zones", "zone_id")):
        if hub.has(name):
            df = hub.table(name).assign(**{key: lambda d, k=key: d[k].astype(str)}).set_index(key)
            if pd.Index(nodes).isin(df.index).all():
                return df.loc[list(nodes)]
    return None


def task_graph(hub: Hub, nodes: Sequence[str], kind: str | None, notes: list[str]) -> np.ndarray | None:
    """Adjacency over ``nodes``: hub edges (of ``kind``), else a Gaussian kernel of coordinates, else the grid."""
    if hub.has("edges") and len(hub.table("edges")):
        edges = hub.table("edges")
        kinds = sorted(edges["kind"].dropna().astype(str).unique()) if "kind" in edges else []
        if kind is None and len(kinds) > 1:
            kind = next((k for k in PREFERRED_EDGE_KINDS if k in kinds), kinds[0])
            notes.append(f"graph: edges of kind {kind!r} (kinds present: {kinds}; pass graph_kind= to choose)")
        sub = edges if kind is None else edges[edges["kind"].astype(str) == kind]
        inside = sub["src"].astype(str).isin(nodes) & sub["dst"].astype(str).isin(nodes)
        if inside.any():
            if not inside.all():
                notes.append(f"graph: {int((~inside).sum())} of {len(sub)} edges touch nodes outside the task; dropped")
            return adjacency_from_edges(sub[inside], nodes, kind=kind)
        if kind is not None and kind not in kinds:
            raise ConfigError(f"graph_kind={kind!r}: the hub's edges have kinds {kinds}")
    info = node_table(hub, nodes)
    if info is not None and {"lat", "lon"} <= set(info.columns) and info[["lat", "lon"]].notna().all().all():
        notes.append("graph: Gaussian kernel of haversine distances between node coordinates (no edges)")
        return adjacency_from_coords(info["lat"].to_numpy(), info["lon"].to_numpy())
    grid = node_grid(hub, nodes)
    if grid:
        notes.append("graph: 4-neighbour grid adjacency (no edges or coordinates)")
        return grid_adjacency(*grid)
    notes.append("graph: none (no edges, coordinates or grid for these nodes)")
    return None


def risk_mask(hub: Hub, nodes: Sequence[str]) -> np.ndarray:
    """``[N]`` bool from ``zones.risk_mask`` in node order."""
    info = node_table(hub, nodes)
    if info is None or "risk_mask" not in info.columns:
        raise HubError("the zones table has no risk_mask for these nodes; the risk protocol evaluates on it")
    return info["risk_mask"].to_numpy(dtype=bool)


def empty_like(split: Split) -> Split:
    """A split with no samples over the same arrays (protocols without validation)."""
    return split.subset(slice(0, 0))


def splits_for(
    x: np.ndarray,
    y: np.ndarray,
    parts: list[np.ndarray],
    spec: WindowSpec,
    ts: pd.DatetimeIndex,
    names: Sequence[str],
    **policy: Any,
) -> list[Split]:
    """``make_split`` for each part with the same missing-data policy."""
    return [make_split(x, y, a, spec, ts, name=n, **policy) for a, n in zip(parts, names, strict=True)]
