"""UCTB data archives (DiDi_Xian, Metro_Chongqing, Metro_Shanghai[V1]): one pickle inside a tar.gz.

Reference: Wang, Chai et al., "Exploring the Generalizability of Spatio-Temporal Traffic Prediction:
Meta-Modeling and an Analytic Framework", IEEE TKDE 2022 (github.com/uctb/UCTB).

Time axis: slot i of a regular archive is ``TimeRange[0] 00:00 + i * TimeFitness`` minutes. Metro archives
use ``TimeFitness = 80``, a UCTB device for 18 slots per day; those slots are inferred (not documented) to be
the operating hours 06:00–24:00, so they are stored hourly from ``first_slot`` each day, step '1h', with
``extra['slots_per_day'] = 18`` and ``extra['slot_hours'] = 'inferred'``.

``TrafficMonthlyInteraction`` (DiDi: [120, 256, 256] OD counts per half-day, 7.9 M cells) is not a hub
table; it is summed over time into ``interaction`` edges (weight = total count, zeros skipped, self-loops
kept), which is what UCTB's interaction graph uses.
"""

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cityagent.errors import HubError
from cityagent.hub.hub import Hub, HubMeta, per_step
from cityagent.hub.importers.archives import require_file, tar_pickle
from cityagent.hub.importers.frames import concat_edges, dense_to_long, matrix_edges
from cityagent.hub.importers.grids import grid_edges
from cityagent.hub.importers.uctb_time import uctb_time_axis

GRAPHS = {"graph_neighbors": "neighbor", "graph_lines": "line"}
# (lat, lat, lon, lon) around each archive's city: Chongqing's StationInfo sits near 34.3 N 118.6 E (Jiangsu),
# shifted or obfuscated at the source (shared/data/demand/SOURCES.md); a map drawn from it would be nonsense
CITY_BOUNDS = {
    "Chongqing": (28.1, 32.3, 105.2, 110.2),
    "Shanghai": (30.6, 31.9, 120.8, 122.1),
    "Xian": (33.6, 34.8, 107.6, 109.9),
}
log = logging.getLogger(__name__)


def _get(d: dict, path: str, where: Path) -> Any:
    node: Any = d
    for key in path.split("/"):
        if not isinstance(node, dict) or key not in node:
            raise HubError(f"{where} has no {path!r} entry; is it a UCTB data archive (DiDi_*/Metro_*)?")
        node = node[key]
    return node


def _zones(info: dict, n: int, where: Path) -> tuple[list[str], pd.DataFrame, dict[str, str]]:
    """Zone ids '0'..'N-1' in TrafficNode column order, with coordinates, names and station codes."""
    ids = [str(i) for i in range(n)]
    if sorted(info, key=str) != sorted(ids):
        raise HubError(f"{where}: Node/StationInfo keys are not the node indices 0..{n - 1}; cannot align stations")
    rows = [info[i] if i in info else info[int(i)] for i in ids]
    zones = pd.DataFrame(
        {
            "zone_id": pd.Series(ids, dtype=str),
            "lat": np.array([float(r[1]) for r in rows]),
            "lon": np.array([float(r[2]) for r in rows]),
            "name": pd.Series([str(r[3]) for r in rows], dtype=str),
        }
    )
    codes = {i: str(r[0]) for i, r in zip(ids, rows, strict=True)}
    return ids, zones, codes


def _grid(d: dict, node: np.ndarray, zones: pd.DataFrame, codes: dict[str, str], where: Path) -> tuple[int, int] | None:
    """(rows, cols) of a gridded archive whose TrafficNode is the row-major TrafficGrid, else None."""
    grid = d.get("Grid", {}).get("TrafficGrid")
    if not isinstance(grid, np.ndarray) or grid.ndim != 3:
        return None
    rows, cols = grid.shape[1:]
    if not np.array_equal(grid.reshape(grid.shape[0], rows * cols), node):  # [T, R, C] -> [T, R*C]
        raise HubError(f"{where}: Grid/TrafficGrid is not Node/TrafficNode on a row-major grid; cannot place cells")
    if any(codes[z] != str(int(z)) for z in zones["zone_id"]):
        raise HubError(f"{where}: StationInfo grid indices differ from the node order; cannot place cells")
    zones["row"], zones["col"] = np.divmod(np.arange(rows * cols, dtype=np.int64), cols)
    return rows, cols


def _coordinates_note(member: str, zones: pd.DataFrame) -> str | None:
    """Why the zones' lat/lon are not where the archive's city is, or None when they are (or the city is unknown)."""
    city = next((c for c in CITY_BOUNDS if c.lower() in member.lower()), None)
    if city is None or zones.empty:
        return None
    lat, lon = float(zones["lat"].median()), float(zones["lon"].median())
    lat0, lat1, lon0, lon1 = CITY_BOUNDS[city]
    if lat0 <= lat <= lat1 and lon0 <= lon <= lon1:
        return None
    return (
        f"zones lat/lon (around {lat:.2f} N, {lon:.2f} E) are not in {city} ({lat0}–{lat1} N, {lon0}–{lon1} E): "
        "the archive's coordinates are shifted or obfuscated; do not map the stations or build distance graphs "
        "from them (the archive's own line and neighbour graphs are unaffected)"
    )


def import_uctb(
    path: str | Path, name: str | None = None, first_slot: str = "06:00", timezone: str = "Asia/Shanghai"
) -> Hub:
    """A demand hub from a UCTB ``*.tar.gz`` (read in memory, never extracted).

    Args:
        path: the archive, e.g. ``Metro_Chongqing.tar.gz``.
        name: hub name (default: the pickle's stem, e.g. ``Metro_Chongqing``).
        first_slot: local time of the first daily slot for 18-slot (metro) archives; inferred, default 06:00.
        timezone: IANA zone of the city (default Asia/Shanghai).
    """
    path = require_file(path, "UCTB archive")
    member, d = tar_pickle(path)
    if not isinstance(d, dict):
        raise HubError(f"{path}:{member} holds a {type(d).__name__}, not a UCTB dict; use a UCTB data archive")
    node = np.asarray(_get(d, "Node/TrafficNode", path))  # [T, N]
    if node.ndim != 2:
        raise HubError(f"{path}: Node/TrafficNode has shape {node.shape}; expected [time, node]")
    ts, step, time_extra = uctb_time_axis(
        _get(d, "TimeRange", path), _get(d, "TimeFitness", path), len(node), first_slot, timezone, path
    )
    ids, zones, codes = _zones(_get(d, "Node/StationInfo", path), node.shape[1], path)
    riders = "metro" in member.lower()  # metro archives count station riders; DiDi counts ride-hailing trips
    extra: dict[str, Any] = {
        "importer": "uctb",
        "files": {"archive": path.name, "pickle": member},
        **time_extra,
        "units": {"count": f"{'riders' if riders else 'trips'} per {per_step(step)}"},  # models' output units
    }
    edges = [
        matrix_edges(ids, np.asarray(a), GRAPHS[g]) for g, a in d.get("contribute_data", {}).items() if g in GRAPHS
    ]
    grid = _grid(d, node, zones, codes, path)
    if grid is not None:
        extra["grid"] = list(grid)
        extra["grid_latlng"] = [[float(v) for v in p] for p in d["Grid"].get("GridLatLng", [])]
        edges.append(grid_edges(*grid, ids=ids))
        extra["edges_note"] = "neighbor edges are the grid's 4-neighbours (derived, not in the archive)"
    else:
        extra["station_codes"] = codes
    inter = d.get("Node", {}).get("TrafficMonthlyInteraction")
    if isinstance(inter, np.ndarray) and inter.size:
        edges.append(matrix_edges(ids, inter.sum(axis=0, dtype=np.int64), "interaction"))  # [N, N] total
        extra["interaction"] = {"source_shape": list(inter.shape), "summed_over": "axis 0 (time)"}
    name = name or Path(member).stem
    if note := _coordinates_note(member, zones):
        extra["coordinates_note"] = note  # validation repeats it as a warning on zones.lat
        log.warning("%s: %s", path.name, note)
    tables = {
        "demand": dense_to_long(ts, ids, "zone_id", {"count": node}),
        "zones": zones,
        "edges": concat_edges(edges),
    }
    return Hub(tables, HubMeta(name=name, step=step, timezone=timezone, source=f"uctb:{path}", extra=extra))
