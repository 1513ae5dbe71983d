"""The EAST-Net protocol on the JONAS demand/supply grids (NYC, DC), as the released code does it.

Reference: Wang et al., "Event-Aware Multimodal Mobility Nowcasting", AAAI 2022; code underdoc-wang/EAST-Net
(``Main.py``: obs_len = pred_len = 8, split 7:1:2; ``Data_Container.py``: ``DataGenerator.get_feats``,
``split2len``, ``DataInput.channel_wise_normalize``).
"""

from collections.abc import Sequence

import numpy as np

from cityagent.hub.hub import Hub
from cityagent.hub.protocols.common import splits_for, task_graph, with_calendar
from cityagent.hub.protocols.registry import register
from cityagent.hub.protocols.task import TaskData
from cityagent.hub.scalers import MinMaxScaler
from cityagent.hub.splits import split_over_samples
from cityagent.hub.tensor import to_tensor
from cityagent.hub.windows import WindowSpec


@register("eastnet")
def eastnet(
    hub: Hub,
    table: str = "demand",
    columns: Sequence[str] = ("count", "supply"),
    target: str = "count",
    input_len: int = 8,
    horizon: int = 8,
    ratios: Sequence[float] = (0.7, 0.1, 0.2),
    calendar: Sequence[str] = ("tod", "dow", "holiday"),
    graph_kind: str | None = None,
) -> TaskData:
    """8 steps in, 8 out; windows over the whole series cut 7:1:2 in order; min-max per channel on everything.

    ``get_feats`` yields ``T - obs_len - pred_len`` windows (one short of the last possible); validation and
    test get ``int(share * n)`` windows and training the rest. Neighbouring parts share steps: the last
    training targets are inputs of the first validation windows, as in the released code.

    Args:
        hub: a JONAS hub (one mode: ``count`` = demand, ``supply``; ``extra['eval_excluded']`` cells).
        table: temporal table (default ``demand``).
        columns: value channels (EAST-Net feeds [demand, supply] per mode).
        target: predicted channel.
        input_len: ``obs_len``.
        horizon: ``pred_len``.
        ratios: train/val/test shares of the windows.
        calendar: time covariates appended to every cell (EAST-Net feeds slot-of-day and weekday one-hots).
        graph_kind: edge kind for the adjacency when the hub has several.
    """
    columns = list(columns) if target in columns else [target, *columns]
    st = to_tensor(hub, table, columns)
    t = len(st.ts)
    y = st.channel(target)
    x, cal_names = with_calendar(st.values, st.ts, calendar, hub.meta.extra.get("holidays", ()))
    spec = WindowSpec.sliding(input_len, horizon)
    every = spec.anchors(0, t)[:-1]  # range(obs_len, T - pred_len) leaves out the last window
    parts = split_over_samples(every, ratios, rounding="tail_floor")
    train, val, test = splits_for(x, y, parts, spec, st.ts, ["train", "val", "test"])
    excluded = set(hub.meta.extra.get("eval_excluded", []))
    notes = [
        "eastnet: min-max per channel fitted on the WHOLE series (validation and test included: leaks their range)",
        f"eastnet: {len(every)} windows split {'/'.join(str(r) for r in ratios)} in order over samples; "
        "neighbouring parts overlap in time (train targets are inputs of the first val windows)",
        f"eastnet: {len(excluded)} cells excluded from evaluation (eval_mask)",
        "eastnet: the released code drops incomplete batches of 32 (drop_last=True) also when testing",
    ]
    if hub.meta.extra.get("mode"):
        notes.append(
            f"eastnet: this hub holds one mode ({hub.meta.extra['mode']}); the paper feeds taxi and bike "
            "channels together"
        )
    return TaskData(
        train=train,
        val=val,
        test=test,
        x_scaler=MinMaxScaler(channels=range(len(columns))).fit(x),
        y_scaler=MinMaxScaler().fit(y[:, :, None]),
        nodes=st.nodes,
        adjacency=task_graph(hub, st.nodes, graph_kind, notes),
        feature_names=[*columns, *cal_names],
        input_len=input_len,
        horizon=horizon,
        step=hub.meta.step,
        protocol="eastnet",
        eval_mask=~np.isin(st.nodes, list(excluded)),
        extra={"table": table, "target": target, "grid": hub.meta.extra.get("grid"), "windows": len(every)},
        notes=notes,
    )
