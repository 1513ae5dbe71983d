"""The UCTB benchmark protocol (DiDi, Metro, Bike; STMeta and its baselines), as UCTB's code does it.

Reference: Wang, Chai et al., "Exploring the Generalizability of Spatio-Temporal Traffic Prediction",
IEEE TKDE 2022; code uctb/UCTB (``dataset/data_loader.NodeTrafficLoader``, ``preprocess.ST_MoveSample``,
``SplitData``, ``Experiments/STMeta/STMeta_Obj.py`` with ``validate_ratio=0.1``).
"""

import warnings
from collections.abc import Sequence

import numpy as np

from cityagent.hub.hub import Hub
from cityagent.hub.protocols.common import slots_per_day, splits_for, task_graph, with_calendar
from cityagent.hub.protocols.registry import register
from cityagent.hub.protocols.task import TaskData
from cityagent.hub.scalers import MinMaxScaler
from cityagent.hub.splits import part_bounds, split_over_samples
from cityagent.hub.tensor import to_tensor
from cityagent.hub.windows import WindowSpec


@register("uctb")
def uctb(
    hub: Hub,
    table: str = "demand",
    target: str = "count",
    closeness_len: int = 6,
    period_len: int = 7,
    trend_len: int = 4,
    test_ratio: float = 0.1,
    val_ratio: float = 0.1,
    remove: bool = True,
    graph_kind: str | None = None,
    calendar: Sequence[str] = (),
) -> TaskData:
    """Closeness/period/trend windows, 1 step ahead; the last ``test_ratio`` of the slots are the test targets.

    Test windows reach back into the training slots for history (UCTB's "expand"), so every test slot is a
    target; training targets start once four weeks of history exist. Validation is the last ``val_ratio`` of
    the training samples. Min-max (one min and max over all nodes) is fitted on the training slots.

    Args:
        hub: the data (days of ``slots_per_day`` slots, e.g. 24 hourly or 18 metro operating hours).
        table: temporal table (default ``demand``).
        target: the one channel (default ``count``).
        closeness_len: most recent slots.
        period_len: same slot on previous days.
        trend_len: same slot in previous weeks.
        test_ratio: share of the slots whose targets are the test set.
        val_ratio: share of the training samples (the last ones) kept for validation.
        remove: drop nodes whose training mean × slots per day ≤ 1 (``NodeTrafficLoader(remove=True)``).
        graph_kind: edge kind for the adjacency when the hub has several.
        calendar: calendar channels appended to every node after the target (``tod``, ``weekend``, ...;
            default none, as UCTB); they are not scaled. ``holiday`` uses the hub's ``meta.extra['holidays']``.
    """
    st = to_tensor(hub, table, [target])
    daily = slots_per_day(hub.meta)
    t = len(st.ts)
    train_end = part_bounds(t, (1 - test_ratio, test_ratio))[0][1]
    notes = [
        f"uctb: last {test_ratio} of {t} slots are test targets ({t - train_end}); test windows take history "
        f"from the training slots; val = last {val_ratio} of the training samples; min-max on training slots",
        f"uctb: closeness {closeness_len}, period {period_len} days, trend {trend_len} weeks of {daily} slots/day",
    ]
    keep = np.ones(len(st.nodes), dtype=bool)
    if remove:
        with warnings.catch_warnings():  # a node without readings has no mean and is removed
            warnings.simplefilter("ignore", RuntimeWarning)
            keep = np.nanmean(st.values[:train_end, :, 0], axis=0) * daily > 1  # [N]
        notes.append(f"uctb: removed {int((~keep).sum())} of {len(keep)} nodes whose training mean × {daily} ≤ 1")
    values = st.values[:, keep]  # [T, N', 1]
    nodes = [n for n, k in zip(st.nodes, keep, strict=True) if k]
    y = values[:, :, 0]
    x, cal_names = with_calendar(values, st.ts, calendar, hub.meta.extra.get("holidays", ()))  # [T, N', 1 + K]
    spec = WindowSpec.periodic(closeness_len, daily, 7 * daily, period_len, trend_len, horizon=1)
    every = spec.anchors(0, t)
    first_target = every + 1
    train_all = every[first_target < train_end]
    train_a, val_a = split_over_samples(train_all, (1 - val_ratio, val_ratio), rounding="cumulative")
    test_a = every[first_target >= train_end]
    train, val, test = splits_for(x, y, [train_a, val_a, test_a], spec, st.ts, ["train", "val", "test"])
    return TaskData(
        train=train,
        val=val,
        test=test,
        x_scaler=MinMaxScaler(channels=[0]).fit(x[:train_end]),
        y_scaler=MinMaxScaler().fit(y[:train_end, :, None]),
        nodes=nodes,
        adjacency=task_graph(hub, nodes, graph_kind, notes),
        feature_names=[target, *cal_names],
        input_len=spec.input_len,
        horizon=1,
        step=hub.meta.step,
        protocol="uctb",
        eval_mask=np.ones(len(nodes), dtype=bool),
        extra={
            "table": table,
            "target": target,
            "slots_per_day": daily,
            "removed_nodes": [n for n, k in zip(st.nodes, keep, strict=True) if not k],
            "groups": dict(spec.groups),
        },
        notes=notes,
    )
