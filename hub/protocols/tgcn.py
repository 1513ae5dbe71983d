"""The T-GCN family protocol (T-GCN, A3T-GCN, AST-GCN on SZ-taxi / Los-loop), as the published code does it.

Reference: Zhao et al., "T-GCN: A Temporal Graph Convolutional Network for Traffic Prediction", IEEE T-ITS
2020; code lehaifeng/T-GCN (``input_data.preprocess_data``, ``utils/data/functions.generate_dataset``).
"""

from collections.abc import Sequence

import numpy as np

from cityagent.errors import HubError
from cityagent.hub.hub import Hub
from cityagent.hub.protocols.common import empty_like, splits_for, task_graph, with_calendar
from cityagent.hub.protocols.registry import register
from cityagent.hub.protocols.task import TaskData
from cityagent.hub.scalers import MaxScaler
from cityagent.hub.splits import split_over_time
from cityagent.hub.tensor import impute_values, to_tensor
from cityagent.hub.windows import WindowSpec


@register("tgcn")
def tgcn(
    hub: Hub,
    table: str = "traffic",
    target: str = "speed",
    input_len: int = 4,
    horizon: int = 1,
    train_rate: float = 0.8,
    graph_kind: str | None = None,
    calendar: Sequence[str] = (),
) -> TaskData:
    """Speed (plus calendar inputs if asked) / global max (test included), 80/20 over time, no validation.

    Each part yields ``len(part) - seq_len - pre_len`` windows (the code's ``range`` leaves out the last one).
    Zeros that the importer stored as missing (``extra['zeros_as_missing']``) are put back as 0 km/h, as the
    published code reads them. SZ-taxi used seq_len 4 with pre_len 1–4 (15–60 min); Los-loop 12 with 3–12.

    Args:
        hub: the data.
        table: temporal table (default ``traffic``).
        target: the one channel (default ``speed``).
        input_len: ``seq_len``.
        horizon: ``pre_len``.
        train_rate: share of the steps for training; the rest is the test set.
        graph_kind: edge kind when the hub has several.
        calendar: calendar channels to append as inputs (``tod``, ``dow``; default none, as published). They
            use only timestamps, so the protocol's targets and scaling stay as published.
    """
    st = to_tensor(hub, table, [target])
    notes = [
        "tgcn: data / global max over the WHOLE series (test period included: leaks the test maximum)",
        f"tgcn: chronological {train_rate}/{round(1 - train_rate, 6)} split, windows inside each part, no "
        "validation set (the published code selects the epoch on the test set)",
    ]
    missing = int(np.isnan(st.values).sum())
    if missing and hub.meta.extra.get("zeros_as_missing"):
        st.values = impute_values(st.values, "zero", what=f"{table}.{target}")
        notes.append(f"tgcn: {missing} zero readings the importer stored as missing are 0 again (published protocol)")
    elif missing:
        raise HubError(
            f"{missing} {table}.{target} readings are missing and the hub does not mark zeros as missing; "
            f"the tgcn protocol needs a complete series: use protocol 'strict'"
        )
    spec = WindowSpec.sliding(input_len, horizon)
    y = st.values[:, :, 0]  # [T, N]
    x, cal_names = with_calendar(st.values, st.ts, calendar)  # [T, N, 1 + K]
    train_a, test_a = split_over_time(len(st.ts), spec, (train_rate, 1 - train_rate))
    # range(len(data) - seq_len - pre_len) stops one window short of the end of each part
    train, test = splits_for(x, y, [train_a[:-1], test_a[:-1]], spec, st.ts, ["train", "test"])
    return TaskData(
        train=train,
        val=empty_like(train),
        test=test,
        x_scaler=MaxScaler(channels=[0]).fit(x),
        y_scaler=MaxScaler().fit(y[:, :, None]),
        nodes=st.nodes,
        adjacency=task_graph(hub, st.nodes, graph_kind, notes),
        feature_names=[target, *cal_names],
        input_len=input_len,
        horizon=horizon,
        step=hub.meta.step,
        protocol="tgcn",
        eval_mask=np.ones(len(st.nodes), dtype=bool),
        extra={"table": table, "target": target, "train_rate": train_rate},
        notes=notes,
    )
