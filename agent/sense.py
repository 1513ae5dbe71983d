"""Sense: a served model's latest input window, built from the hub the way its training protocol built it.

The model's metadata (what the server's ModelMetadata answer carries) names its domain, nodes, step, input offsets
and feature names. Value channels come from ``hub.tensor.to_tensor`` and calendar channels from
``hub.protocols.common.with_calendar``, as the protocols do, so the model sees the features it was trained on.
Scaling is inside the served model. A window with a missing reading is reported and skipped, never filled.
"""

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cityagent import durations
from cityagent.agent.grid import on_grid
from cityagent.errors import CityAgentError, ConfigError, HubError
from cityagent.hub.hub import Hub
from cityagent.hub.protocols.common import slots_per_day, with_calendar
from cityagent.hub.schema import table_schema
from cityagent.hub.tensor import hub_index, time_grid, to_tensor

# the plain strings a server adds to ModelMetadata (serving.dataplane.SERVER_PARAMETERS; the agent, a client,
# does not import the server); every other parameter is a JSON value the exporter wrote
SERVER_PARAMETERS = ("version", "source", "onnx_sha256")

DOMAIN_TABLE = {"traffic": "traffic", "demand": "demand", "risk": "incidents"}  # as training's DOMAIN_TARGET
CALENDAR = [  # feature name pattern → calendar kind (cityagent.hub.calendar)
    (re.compile(r"tod"), "tod"),
    (re.compile(r"dow_index"), "dow_index"),
    (re.compile(r"dow_\d"), "dow"),
    (re.compile(r"hour_\d+"), "hour"),
    (re.compile(r"holiday"), "holiday"),
    (re.compile(r"weekend"), "weekend"),
]


class WindowMissing(CityAgentError):
    """The input window has missing readings; the model is skipped this cycle."""


@dataclass(frozen=True)
class ModelFacts:
    """What a served model needs as input, from its ModelMetadata parameters (JSON values)."""

    name: str
    version: str
    domain: str
    nodes: list[str]
    step: str
    input_offsets: tuple[int, ...]
    target_offsets: tuple[int, ...]
    feature_names: list[str]
    target: str
    quantiles: list[float] | None = None
    eval_mask: list[bool] | None = None
    run_id: str | None = None

    @property
    def table(self) -> str:
        return DOMAIN_TABLE[self.domain]

    @classmethod
    def from_parameters(cls, name: str, params: dict[str, str]) -> "ModelFacts":
        """Parse the string parameters of a ModelMetadata answer (each a JSON value, as the exporter wrote it)."""
        try:
            p: dict[str, Any] = {k: json.loads(v) for k, v in params.items() if k not in SERVER_PARAMETERS}
        except json.JSONDecodeError as e:
            raise ConfigError(f"model {name}: metadata is not JSON ({e}); export it with `cityagent export`") from e
        missing = [k for k in ("domain", "nodes", "step", "input_len", "horizon", "feature_names") if k not in p]
        if missing or p.get("domain") not in DOMAIN_TABLE:
            raise ConfigError(
                f"model {name}: metadata lacks {missing or 'a known domain'}; serve models exported by cityagent"
            )
        n_in, n_out = int(p["input_len"]), int(p["horizon"])
        try:  # checked here: every use of the facts (what to read, the window) counts in steps
            durations.step_delta(str(p["step"]))
        except ValueError as e:
            raise ConfigError(f"model {name}: metadata step {p['step']!r} is not a duration; {e}") from e
        return cls(
            name=name,
            version=str(params.get("version", "")),
            domain=p["domain"],
            nodes=[str(n) for n in p["nodes"]],
            step=str(p["step"]),
            input_offsets=tuple(p.get("input_offsets") or range(1 - n_in, 1)),
            target_offsets=tuple(p.get("target_offsets") or range(1, n_out + 1)),
            feature_names=list(p["feature_names"]),
            target=str(p.get("target") or p["feature_names"][0]),
            quantiles=p.get("quantiles"),
            eval_mask=p.get("eval_mask"),
            run_id=p.get("run_id"),
        )


@dataclass
class Window:
    """One model input: ``x [1, T_in, N, F]`` in real units, anchored at ``anchor`` (the last input step)."""

    facts: ModelFacts
    anchor: pd.Timestamp
    x: np.ndarray
    target_times: pd.DatetimeIndex  # [H]
    note: str = ""  # why the anchor is not the newest step of the table, when it is not


def split_features(feature_names: list[str]) -> tuple[list[str], list[str]]:
    """``(value columns, calendar kinds)``: the protocols put value channels first, calendar channels after."""
    kinds: list[str] = []
    first_cal = len(feature_names)
    for i, name in enumerate(feature_names):
        kind = next((k for pat, k in CALENDAR if pat.fullmatch(name)), None)
        if kind is None:
            if kinds:
                raise ConfigError(f"feature {name!r} follows calendar features in {feature_names}; unknown layout")
            continue
        first_cal = min(first_cal, i)
        if kind not in kinds:
            kinds.append(kind)
    return feature_names[:first_cal], kinds


def steps_at(hub: Hub, anchor: pd.Timestamp, offsets: tuple[int, ...]) -> pd.DatetimeIndex:
    """The hub-grid times ``anchor + offset`` steps (operating-hour hubs skip the night, as training did).

    Raises:
        OffGrid: ``anchor`` is not a step of the hub's grid (the message names the nearest two).
    """
    anchor = on_grid(hub, anchor)
    reach = max(abs(min(offsets)), abs(max(offsets)))
    days = pd.Timedelta(days=math.ceil(reach / slots_per_day(hub.meta)) + 1)
    grid = time_grid(hub.meta, anchor - days, anchor + days)
    return grid[grid.get_loc(anchor) + np.asarray(offsets)]


def latest_step(hub: Hub, facts: ModelFacts) -> tuple[pd.Timestamp, str]:
    """Where the window ends by default, and a note when that is not the table's newest step.

    The newest step every node has reported: readings of one step arrive seconds apart (and the listener writes
    them in batches), so the newest step any node has is often incomplete, and one sensor ahead of the rest must
    not silence the model. That step is used only while a forecast from it still reaches past the newest reading;
    a node behind by more (a dead sensor) leaves the window at the newest step, which sense then reports as
    missing, naming the node. For incidents (events) it is the hub's newest step.
    """
    if facts.table == "incidents":
        return hub_index(hub)[-1], ""
    df = hub.table(facts.table)
    idcol = table_schema(facts.table).node_column
    mine = df[df[idcol].astype(str).isin(facts.nodes)]
    if mine.empty:
        raise WindowMissing(f"{facts.name}: the hub's {facts.table} table has no readings of its nodes; skipped")
    newest = mine["ts"].max().tz_convert(hub.meta.timezone)
    reach = max(facts.target_offsets) * hub.meta.step_delta  # a window ending earlier would forecast only the past
    recent = mine[mine["ts"] > newest - reach]  # the steps that can end the window: not weeks of history each cycle
    frame = pd.DataFrame(
        {"ts": recent["ts"].dt.tz_convert(hub.meta.timezone).to_numpy(), "id": recent[idcol].astype(str).to_numpy()}
    )
    reported = frame.groupby("ts")["id"].nunique()
    complete = reported.index[reported.to_numpy() >= len(set(facts.nodes))]
    if not len(complete) or complete.max() == newest:
        return newest, ""
    last = complete.max()
    ahead = frame.loc[frame["ts"] == newest, "id"].nunique()
    return last, f"the newest step every node has reported ({ahead} node(s) already report {newest:%H:%M})"


def readings(hub: Hub, table: str, nodes: list[str], columns: list[str], times: pd.DatetimeIndex) -> np.ndarray:
    """``[T, N, C]`` of ``nodes`` at ``times``; NaN where a reading is absent (0 for incident counts).

    ``times`` may repeat a step (UCTB's period and trend frames coincide a week back): it is read once and
    repeated by position, as the training windows repeat it.
    """
    once = times.unique()
    if len(once) < len(times):
        return readings(hub, table, nodes, columns, once)[once.get_indexer(times)]  # [T, N, C]
    df = hub.table(table)
    idcol = table_schema(table).node_column
    if idcol not in df:
        raise HubError(f"table {table} has no {idcol} column; assign each row a node before forecasting")
    ts = df["ts"].dt.tz_convert(hub.meta.timezone)
    if table == "incidents":  # events count in the step they fall in, as to_tensor counts them
        ts = ts.dt.tz_convert("UTC").dt.floor(hub.meta.step_delta).dt.tz_convert(hub.meta.timezone)
    keep = ts.isin(times) & df[idcol].astype(str).isin(nodes)
    if not keep.any():
        fill = 0.0 if table == "incidents" else np.nan
        return np.full((len(times), len(nodes), len(columns)), fill, dtype=np.float32)
    sub = Hub({table: df[keep].reset_index(drop=True)}, hub.meta)
    return to_tensor(sub, table, columns, nodes=nodes, index=times).values


def sense(hub: Hub, facts: ModelFacts, at: pd.Timestamp | str | None = None) -> Window:
    """The input window of ``facts``' model ending at ``at`` (default: the newest step of its table).

    Args:
        hub: the hub, as read this cycle.
        facts: the served model's facts (``ModelFacts.from_parameters``).
        at: anchor time (the last input step); a string is read in the hub's timezone.

    Raises:
        WindowMissing: a reading of the window is missing (the message says how many, which nodes and when).
        OffGrid: ``at`` is not a step of the hub's grid (the message names the nearest two).
        ConfigError: the model was trained on another step or on features the agent cannot rebuild.
    """
    if durations.step_delta(facts.step) != hub.meta.step_delta:
        raise ConfigError(f"{facts.name} was trained on {facts.step} steps but the hub has {hub.meta.step} steps")
    columns, kinds = split_features(facts.feature_names)
    note = ""
    if at is None:
        anchor, note = latest_step(hub, facts)
    else:
        anchor = on_grid(hub, pd.Timestamp(at))
    inputs = steps_at(hub, anchor, facts.input_offsets)
    unread = hub.origin.first_unread(facts.table, inputs) if hub.origin else None
    if unread is not None:  # the cycle read too little of the hub: say so, never "missing"
        since = hub.origin.since[facts.table]
        raise ConfigError(
            f"{facts.name}'s window reaches back to {inputs[0]:%Y-%m-%d %H:%M}, {anchor - inputs[0]} before its last "
            f"step, but the agent reads the hub's {facts.table} from {since:%Y-%m-%d} on (loop.history); raise "
            f"loop.history to at least {anchor - inputs[0] + pd.Timedelta(days=1)}"
        )
    values = readings(hub, facts.table, facts.nodes, columns, inputs)  # [T_in, N, C]
    gaps = np.isnan(values)
    if gaps.any():
        t, n = np.nonzero(gaps.any(axis=2))
        nodes = sorted({facts.nodes[i] for i in n})
        raise WindowMissing(
            f"{facts.name}: the window {inputs[0]:%Y-%m-%d %H:%M}–{inputs[-1]:%H:%M} lacks {int(gaps.sum())} of "
            f"{gaps.size} readings ({len(nodes)} node(s), first {facts.nodes[n[0]]!r} at {inputs[t[0]]:%H:%M}); "
            "skipped, nothing is filled in"
        )
    x, names = with_calendar(values, inputs, kinds, hub.meta.extra.get("holidays", ()))  # [T_in, N, C + K]
    if columns + names != facts.feature_names:
        raise ConfigError(
            f"{facts.name} expects features {facts.feature_names}, the agent rebuilds {columns + names}; "
            "retrain the model with this cityagent version"
        )
    targets = steps_at(hub, anchor, facts.target_offsets)
    return Window(facts, anchor, x[None].astype(np.float32), targets, note)
