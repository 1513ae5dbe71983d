"""The GSNet accident-risk protocol (GSNet, RiskContra, MGHSTN on the Chicago / NYC grids).

Reference: Wang et al., "GSNet: Learning Spatial-Temporal Correlations from Geographical and Semantic Aspects
for Traffic Accident Risk Forecasting", AAAI 2021; code Echohhhhhh/GSNet (``lib/dataloader.split_and_norm_data``,
``lib/utils.Scaler_Chi``).
"""

from collections.abc import Sequence

import numpy as np

from cityagent.errors import HubError
from cityagent.hub.hub import Hub
from cityagent.hub.importers.grids import grid_cell_ids
from cityagent.hub.importers.gsnet import gsnet_tensor  # the importer owns the 41-channel layout
from cityagent.hub.protocols.common import risk_mask, slots_per_day, splits_for, task_graph
from cityagent.hub.protocols.registry import register
from cityagent.hub.protocols.task import TaskData
from cityagent.hub.scalers import MinMaxScaler
from cityagent.hub.splits import part_bounds, split_over_time
from cityagent.hub.tensor import hub_index
from cityagent.hub.windows import WindowSpec

CHANNELS = [
    "risk",
    *[f"hour_{h}" for h in range(24)],
    *[f"dow_{d}" for d in range(7)],
    "holiday",
    "temperature_k",
    *[f"weather_{w}" for w in ("clear", "cloudy", "rain", "snow", "mist")],
    "inflow",
    "outflow",
]
SCALED = [0, 33, 39, 40]  # Scaler_Chi: risk, temperature, inflow, outflow
RUSH_HOURS = (6, 7, 8, 15, 16, 17, 18)


@register("gsnet")
def gsnet(
    hub: Hub,
    train_rate: float = 0.6,
    val_rate: float = 0.2,
    recent: int = 3,
    weeks: int = 4,
    rush_hours: Sequence[int] = RUSH_HOURS,
    graph_kind: str | None = None,
) -> TaskData:
    """All 41 GSNet channels of 4 week-prior same hours + 3 recent hours → next-hour risk of every cell.

    Hours are cut 60/20/20 first and windows are built inside each part, so each part's first four weeks
    are history only. Min-max is fitted on the training hours for risk, temperature, inflow and outflow.

    Args:
        hub: a GSNet-layout hub (incidents, demand with supply, weather, zones with risk_mask, ``extra['grid']``).
        train_rate: share of hours for training.
        val_rate: share of hours for validation.
        recent: most recent hours.
        weeks: same hour in previous weeks.
        rush_hours: hours of day counted as rush ("high-frequency") targets.
        graph_kind: edge kind for the adjacency (``road``, ``risk``, ``sum``); default ``road``.
    """

    grid = hub.meta.extra.get("grid")
    if not grid:
        raise HubError("the gsnet protocol needs a gridded hub (extra['grid'] = [rows, cols]); import GSNet data")
    cube = gsnet_tensor(hub)  # [T, 41, R, C]
    t, d, rows, cols = cube.shape
    x = cube.transpose(0, 2, 3, 1).reshape(t, rows * cols, d)  # [T, N, 41] row-major cells, a view (no copy)
    ts = hub_index(hub)
    if len(ts) != t:
        raise HubError(f"gsnet_tensor has {t} hours but the hub's tables span {len(ts)}; complete the tables")
    y = x[:, :, 0]  # [T, N] risk
    daily = slots_per_day(hub.meta)
    ratios = (train_rate, val_rate, 1 - train_rate - val_rate)
    spec = WindowSpec.periodic(recent, daily, 7 * daily, 0, weeks, horizon=1)
    parts = split_over_time(t, spec, ratios)
    names = ["train", "val", "test"]
    splits = splits_for(x, y, parts, spec, ts, names, skip_missing_inputs=False)
    train_end = part_bounds(t, ratios)[0][1]
    nodes = grid_cell_ids(rows, cols)
    notes = [
        f"gsnet: hours split {train_rate}/{val_rate}/{round(ratios[2], 6)}, windows inside each part "
        f"(first {spec.history + 1} h of a part are history only); min-max on training hours for channels {SCALED}",
        "gsnet: metrics are computed on the risk_mask cells only (eval_mask); extra['rush_hour'] flags targets "
        f"at hours {list(rush_hours)}",
    ]
    hours = {n: s.ts.hour.to_numpy() for n, s in zip(names, splits, strict=True)}
    return TaskData(
        train=splits[0],
        val=splits[1],
        test=splits[2],
        x_scaler=MinMaxScaler(channels=SCALED).fit(x[:train_end]),
        y_scaler=MinMaxScaler().fit(y[:train_end, :, None]),
        nodes=nodes,
        adjacency=task_graph(hub, nodes, graph_kind or "road", notes),
        feature_names=list(CHANNELS),
        input_len=spec.input_len,
        horizon=1,
        step=hub.meta.step,
        protocol="gsnet",
        eval_mask=risk_mask(hub, nodes),
        extra={
            "table": "incidents",
            "target": "risk",
            "grid": [rows, cols],
            "rush_hours": list(rush_hours),
            "rush_hour": {n: np.isin(h, list(rush_hours)) for n, h in hours.items()},
            "graph_nodes": hub.meta.extra.get("graph_nodes"),
            "groups": dict(spec.groups),
        },
        notes=notes,
    )
