"""The default protocol: sliding windows, a chronological split over time, scalers fitted on train only."""

import logging
from collections.abc import Sequence

import numpy as np

from cityagent.errors import ConfigError, HubError
from cityagent.hub.hub import Hub
from cityagent.hub.protocols.common import DEFAULT_TARGET, empty_like, pick_table, splits_for, task_graph, with_calendar
from cityagent.hub.protocols.registry import register
from cityagent.hub.protocols.task import TaskData
from cityagent.hub.scalers import make_scaler
from cityagent.hub.splits import part_bounds, split_over_time
from cityagent.hub.tensor import impute_values, to_tensor
from cityagent.hub.windows import WindowSpec

log = logging.getLogger(__name__)

MOSTLY_MISSING = 0.5  # above this share of missing readings, filling gaps would invent most of the data


@register("strict")
def strict(
    hub: Hub,
    table: str | None = None,
    columns: Sequence[str] | None = None,
    target: str | None = None,
    input_len: int = 12,
    horizon: int = 12,
    ratios: Sequence[float] = (0.7, 0.1, 0.2),
    scaler: str = "standard",
    calendar: Sequence[str] = ("tod", "dow"),
    impute: str | None = None,
    graph_kind: str | None = None,
) -> TaskData:
    """Leak-free windows: split the steps 70/10/20, build windows inside each part, fit scalers on train.

    Windows with any missing input are left out and missing targets are masked (both counted in ``notes``).

    Args:
        hub: the data.
        table: ``traffic``, ``demand`` or ``incidents`` (default: the hub's only one).
        columns: value channels (default: the target only); the target is put first if missing.
        target: predicted column (default ``speed`` / ``count`` / ``severity``).
        input_len: input steps.
        horizon: predicted steps.
        ratios: train/val/test shares of the steps (two values: no validation).
        scaler: ``standard``, ``minmax``, ``max`` or ``identity``, fitted on the training steps.
        calendar: calendar channels appended to every node (``tod``, ``dow``, ``holiday``, ...).
        impute: fill missing readings first (``zero``, ``ffill``, ``mean``); default keeps them missing.
        graph_kind: edge kind for the adjacency when the hub has several.
    """
    table = pick_table(hub, table)
    target = target or DEFAULT_TARGET[table]
    columns = list(columns) if columns else [target]
    if target not in columns:
        columns.insert(0, target)
    if len(ratios) not in (2, 3):
        raise ConfigError(f"ratios={list(ratios)}: give (train, val, test) or (train, test)")
    spec = WindowSpec.sliding(input_len, horizon)
    st = to_tensor(hub, table, columns)
    notes = [
        f"strict: chronological {'/'.join(str(r) for r in ratios)} split over time, windows inside each "
        f"part, {scaler} scalers fitted on the training steps only"
    ]
    train_end = part_bounds(len(st.ts), ratios)[0][1]
    y = st.channel(target).copy()  # [T, N]; taken before imputing: a filled-in reading must never be scored as truth
    if impute:
        before = int(np.isnan(st.values).sum())
        if before > MOSTLY_MISSING * st.values.size:
            log.warning(
                "%s: %d of %d readings (%.0f%%) are missing and will be filled with %s: most of the inputs will be "
                "invented; check that hub.json's step (%s) is the data's interval",
                table,
                before,
                st.values.size,
                100 * before / st.values.size,
                impute,
                hub.meta.step,
            )
        st.values = impute_values(st.values, impute, f"{table}.{','.join(columns)}", fit_steps=train_end)
        notes.append(
            f"strict: filled {before - int(np.isnan(st.values).sum())} of {before} missing readings "
            f"with {impute} in the inputs (ffill uses past readings only; mean is each node's training mean); "
            "missing targets stay missing and are masked in the metrics"
        )
    if len(st.ts) < spec.need():
        raise HubError(
            f"the hub has {len(st.ts)} steps of {table}, but one window needs {spec.need()} "
            f"({input_len} in + {horizon} out); import more data or shorten the window"
        )
    holidays = hub.meta.extra.get("holidays", ())
    x, cal_names = with_calendar(st.values, st.ts, calendar, holidays)  # [T, N, C + K]
    parts = split_over_time(len(st.ts), spec, ratios)
    names = ["train", "val", "test"] if len(ratios) == 3 else ["train", "test"]
    splits = dict(zip(names, splits_for(x, y, parts, spec, st.ts, names), strict=True))
    for name, s in splits.items():
        if s.skipped.get("missing_inputs") or s.masked:
            notes.append(
                f"{name}: left out {s.skipped['missing_inputs']} windows with missing inputs, "
                f"masked missing targets in {s.masked}"
            )
    if not len(splits["train"]):
        share = float(np.isnan(y[:train_end]).mean())
        if share > MOSTLY_MISSING:  # filling would invent most of the data: the step or the nodes are wrong
            raise HubError(
                f"every training window of {table} has a missing input, and {share:.0%} of the {target} readings "
                f"in the training steps are missing: check that hub.json's step ({hub.meta.step}) is the data's "
                "interval (`cityagent hub validate` compares them), or choose nodes with more complete readings"
            )
        raise HubError(
            f"every training window of {table} has a missing input ({splits['train'].skipped}); "
            "fill the gaps with impute='ffill' (or 'zero', 'mean'; in a config or on the command line "
            "task.params.impute=ffill) or choose nodes with complete readings"
        )
    x_scaler = make_scaler(scaler, channels=range(len(columns))).fit(x[:train_end])
    y_scaler = make_scaler(scaler).fit(y[:train_end, :, None])
    return TaskData(
        train=splits["train"],
        val=splits.get("val", empty_like(splits["train"])),
        test=splits["test"],
        x_scaler=x_scaler,
        y_scaler=y_scaler,
        nodes=st.nodes,
        adjacency=task_graph(hub, st.nodes, graph_kind, notes),
        feature_names=[*columns, *cal_names],
        input_len=spec.input_len,
        horizon=spec.horizon,
        step=hub.meta.step,
        protocol="strict",
        eval_mask=np.ones(len(st.nodes), dtype=bool),
        extra={"table": table, "target": target, "train_steps": train_end},
        notes=notes,
    )
