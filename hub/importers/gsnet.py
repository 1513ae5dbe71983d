"""GSNet-format accident-risk grids (Chicago 2016): the 41-channel ``all_data`` tensor as hub tables.

Reference: Wang et al., "GSNet: Learning Spatial-Temporal Correlations from Geographical and Semantic Aspects
for Traffic Accident Risk Forecasting", AAAI 2021. Channels of ``all_data [T, 41, R, C]``: 0 risk, 1–24
one-hot hour, 25–31 one-hot weekday (25 = Monday), 32 holiday, 33 temperature (K), 34–38 one-hot weather,
39 taxi inflow, 40 taxi outflow (shared/data/risk/SOURCES.md).

Clock: the tensor has 24 slots every day, daylight-saving day included (its hour one-hot is ``t % 24``), so
its slots are local wall-clock hours. They are stored in the fixed offset ``Etc/GMT+6`` (UTC−6, Chicago
standard time), which keeps the series regular and the hour/day features exact; in summer the real instant
of a slot is one hour earlier. ``extra['local_timezone']`` names the city's zone.
"""

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from cityagent.errors import HubError
from cityagent.hub.hub import Hub, HubMeta
from cityagent.hub.importers.archives import READ_ERRORS, require_file, unreadable, wrong_importer, zip_pickle
from cityagent.hub.importers.frames import concat_edges, dense_to_long, matrix_edges, regular_ts
from cityagent.hub.importers.grids import cell_id, grid_cell_ids, grid_zones

START = "2016-02-01 00:00"
TIMEZONE = "Etc/GMT+6"  # POSIX sign: UTC-6
CONDITIONS = ("clear", "cloudy", "rain", "snow", "mist")  # channels 34..38
KELVIN = 273.15
ARRAYS = ("all_data", "risk_mask", "grid_node_map", "risk_adj", "road_adj", "sum_adj")
GRAPHS = {"risk_adj": "risk", "road_adj": "road", "sum_adj": "sum"}


def _load(path: Path, grid: int) -> dict[str, np.ndarray]:
    """The six arrays from the derived ``.npz`` or the original ``chicago.zip`` (read in memory)."""
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                city = next((n.split("/")[0] for n in zf.namelist() if "/all_data_" in n), "chicago")
                return {k: np.asarray(zip_pickle(zf, f"{city}/{k}_{grid}_{grid}.pkl", path)) for k in ARRAYS}
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ARRAYS if k not in z.files]
            if missing:
                raise HubError(f"{path} lacks arrays {missing}; use chicago_20x20_derived.npz or chicago.zip")
            return {k: z[k] for k in ARRAYS}
    except (*READ_ERRORS, ValueError) as e:
        raise HubError(wrong_importer(path, "gsnet") or unreadable(path, "a readable GSNet .npz/.zip", e)) from e


def _check(a: dict[str, np.ndarray], path: Path) -> None:
    x, nodes = a["all_data"], a["grid_node_map"]
    if x.ndim != 4 or x.shape[1] != 41:
        raise HubError(f"{path}: all_data has shape {x.shape}; expected [T, 41, rows, cols]")
    if nodes.shape[0] != x.shape[2] * x.shape[3] or (nodes.sum(axis=0) != 1).any() or (nodes.sum(axis=1) > 1).any():
        raise HubError(f"{path}: grid_node_map {nodes.shape} is not a one-to-one cell → node map for this grid")
    shared = x[:, 1:39]  # [T, 38, R, C]: calendar and weather must be city-wide
    uneven = np.flatnonzero((shared != shared[:, :, :1, :1]).any(axis=(0, 2, 3))) + 1
    if len(uneven):
        raise HubError(
            f"{path}: channel(s) {uneven.tolist()} differ between cells, but calendar and weather channels "
            f"1–38 must be city-wide to become the weather table; use another grid size"
        )


def import_gsnet(path: str | Path, name: str = "chicago-risk", grid: int = 20, start: str = START) -> Hub:
    """A risk + demand + weather hub from GSNet-format Chicago data.

    Args:
        path: ``chicago_20x20_derived.npz`` or the original ``chicago.zip``.
        name: hub name.
        grid: grid size to read from the zip (20, 10, 5 or 2); the npz holds 20 only.
        start: first hour (wall clock), default 2016-02-01 00:00.
    """
    path = require_file(path, "GSNet data file")
    a = _load(path, grid)
    _check(a, path)
    x = a["all_data"]  # [T, 41, R, C]
    t, _, rows, cols = x.shape
    ids = grid_cell_ids(rows, cols)
    ts = regular_ts(start, t, "1h", TIMEZONE)
    cells = x.reshape(t, 41, rows * cols)  # [T, 41, R*C], row-major cells
    risk = cells[:, 0]
    tr, cr = np.nonzero(risk)  # one incident row per non-zero cell-hour, time-major
    incidents = pd.DataFrame(
        {
            "ts": ts[tr],
            "cell_id": pd.Series(np.asarray(ids, dtype=object)[cr], dtype=str),
            "severity": risk[tr, cr].astype(np.float64),
            "kind": pd.Series(["risk"] * len(tr), dtype=str),
        }
    )
    city = x[:, :, 0, 0]  # [T, 41]
    onehot = city[:, 34:39]
    if (onehot.sum(axis=1) > 1).any():
        raise HubError(f"{path}: weather channels 34–38 have several ones in one hour; expected one-hot")
    condition = np.where(onehot.sum(axis=1) == 1, np.array(CONDITIONS, dtype=object)[onehot.argmax(axis=1)], "unknown")
    weather = pd.DataFrame(
        {
            "ts": ts,
            "temperature": city[:, 33].astype(np.float64) - KELVIN,
            "condition": pd.Series(condition, dtype=str),
        }
    )
    zones = grid_zones(rows, cols)
    zones["risk_mask"] = a["risk_mask"].reshape(-1) != 0
    node_cells = a["grid_node_map"].argmax(axis=0)  # node j -> row-major cell index
    graph_ids = [ids[i] for i in node_cells]
    edges = concat_edges([matrix_edges(graph_ids, a[k], kind) for k, kind in GRAPHS.items()])
    days = ts[::24]
    extra = {
        "importer": "gsnet",
        "files": {"data": path.name},
        "grid": [rows, cols],
        "steps": t,
        "local_timezone": "America/Chicago",
        "clock": "local wall-clock hours in fixed offset UTC-6",
        "holidays": [d.strftime("%Y-%m-%d") for d, h in zip(days, city[::24, 32], strict=True) if h == 1],
        "graph_nodes": graph_ids,
        "temperature": "degrees C = kelvin - 273.15; float32(C + 273.15) is the source kelvin exactly",
        "weather_conditions": [*CONDITIONS, "unknown (all five one-hot channels are 0)"],
        "demand": "count = taxi outflow (channel 40), supply = taxi inflow (channel 39)",
    }
    tables = {
        "demand": dense_to_long(ts, ids, "zone_id", {"count": cells[:, 40], "supply": cells[:, 39]}),
        "incidents": incidents,
        "weather": weather,
        "zones": zones,
        "edges": edges,
    }
    hub = Hub(tables, HubMeta(name=name, step="1h", timezone=TIMEZONE, source=f"gsnet:{path}", extra=extra))
    _check_holidays(hub, city[:, 32], path)
    return hub


def _check_holidays(hub: Hub, flag: np.ndarray, path: Path) -> None:
    """The holiday channel must be whole days, or ``extra['holidays']`` would not reproduce it."""
    days = hub.table("weather")["ts"].dt.strftime("%Y-%m-%d").isin(hub.meta.extra["holidays"]).to_numpy()
    if not np.array_equal(days, flag == 1):
        raise HubError(f"{path}: holiday channel 32 is not constant within days; cannot store it as dates")


def gsnet_tensor(hub: Hub) -> np.ndarray:
    """Rebuild the float32 ``all_data [T, 41, R, C]`` tensor of a GSNet hub (calendar channels from ``ts``).

    Raises HubError when a cell-hour of demand or an hour of weather is absent.
    """
    rows, cols = hub.meta.extra["grid"]
    weather = hub.table("weather").sort_values("ts")
    ts = pd.DatetimeIndex(weather["ts"]).tz_convert(hub.meta.timezone)
    t = len(ts)
    step = hub.meta.step_delta
    if t == 0 or (ts != pd.date_range(ts[0], periods=t, freq=step)).any():
        raise HubError("weather table is not a complete regular series; gsnet_tensor needs every hour")
    x = np.zeros((t, 41, rows, cols), dtype=np.float32)  # [T, 41, R, C]
    x[np.arange(t), 1 + ts.hour, :, :] = 1
    x[np.arange(t), 25 + ts.day_of_week, :, :] = 1
    x[:, 32] = ts.strftime("%Y-%m-%d").isin(hub.meta.extra.get("holidays", [])).astype(np.float32)[:, None, None]
    x[:, 33] = (weather["temperature"].to_numpy() + KELVIN).astype(np.float32)[:, None, None]
    code = weather["condition"].map({c: i for i, c in enumerate(CONDITIONS)})
    known = code.notna().to_numpy()
    x[np.flatnonzero(known), 34 + code[known].to_numpy(dtype=np.int64)] = 1

    zones = hub.table("zones").set_index("zone_id")
    t0 = ts[0]

    def place(df: pd.DataFrame, id_col: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ti = ((df["ts"] - t0) // step).to_numpy(dtype=np.int64)
        cell = zones.loc[df[id_col].to_numpy()]
        return ti, cell["row"].to_numpy(dtype=np.int64), cell["col"].to_numpy(dtype=np.int64)

    demand = hub.table("demand")
    if len(demand) != t * rows * cols:
        raise HubError(f"demand has {len(demand)} rows, not {t}×{rows * cols} cell-hours; gsnet_tensor needs all")
    ti, r, c = place(demand, "zone_id")
    x[ti, 39, r, c] = demand["supply"].to_numpy(dtype=np.float32)
    x[ti, 40, r, c] = demand["count"].to_numpy(dtype=np.float32)
    inc = hub.table("incidents")
    ti, r, c = place(inc, "cell_id")
    np.add.at(x[:, 0], (ti, r, c), inc["severity"].to_numpy(dtype=np.float32))  # risk = sum of severities
    return x


__all__ = ["cell_id", "gsnet_tensor", "import_gsnet"]
