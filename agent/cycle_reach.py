"""What one agent cycle reads of the hub: for each table a served model reads, the recent days its drift window,
usual demand and waiting forecasts need, and the dates its input frames fall on further back.

``loop.history`` stays the furthest any of it reaches. A 5-minute traffic model with a one-hour input then costs
the cycle three dates of traffic, not 37; a model with period and trend frames (UCTB's: the same hour 1–7 days and
1–4 weeks back) adds the dates of those frames, not the weeks between them. Of its own decisions a cycle reads
those the windows it may decide could already have (:func:`decisions_reach`). A replay (``--at``) adds the dates of
its window, wherever it lies, and forecasts left waiting longer than what a cycle reads are scored on the dates of
their targets (:func:`target_reach`), never on the whole hub.
"""

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import date, timedelta

import pandas as pd

from cityagent import durations
from cityagent.agent.agent_config import AgentConfig
from cityagent.agent.sense import DOMAIN_TABLE, ModelFacts
from cityagent.hub.hub import HubMeta
from cityagent.hub.reach import DAY, Reach
from cityagent.hub.schema import TABLES

# read as far as loop.history whatever the models: incidents, as a risk window ends at the hub's clock, not at the
# newest incident, which may be days older, so counting back from the table's own newest date would miss frames
# (events are few: weeks of them are small); and the agent's own decisions when it cannot tell how old the windows
# it is about to decide are (decisions_reach)
WHOLE_HISTORY = ("decisions", "incidents")


def offset_times(meta: HubMeta, offset: int) -> tuple[pd.Timedelta, pd.Timedelta]:
    """The earliest and latest time ``offset`` steps can lie from their anchor: offset × step on a regular grid; on
    an operating-hours grid (steps only while the city runs, ``extra['slots_per_day']``) the days the offset spans,
    and a day either side (the night it skips)."""
    spd = meta.extra.get("slots_per_day")
    if not spd:
        return offset * meta.step_delta, offset * meta.step_delta
    days = offset * DAY / int(spd)
    return days - DAY, days + DAY


def model_reach(cfg: AgentConfig, facts: ModelFacts, meta: HubMeta) -> Reach:
    """What ``facts``' model needs of its table this cycle, counted back from the table's newest reading."""
    # the window ends up to a horizon before the newest reading (the newest step every node has reported)
    back = offset_times(meta, max(facts.target_offsets))[1]
    recent = [durations.duration(cfg.drift.window, "drift.window")]  # drift compares this much with training
    if facts.domain == "demand":
        recent.append(pd.Timedelta(days=cfg.alerts.usual_days))  # each zone's usual demand at the target hours
    # forecasts wait for their targets, and up to loop.score_grace more for late readings, before they are scored;
    # one older than what is read is scored on the dates of its targets (target_reach)
    grace = durations.duration(cfg.loop.score_grace, "loop.score_grace")
    spans = []
    for o in sorted(set(facts.input_offsets)):
        lo, hi = offset_times(meta, o)
        spans.append((lo - back, hi))
    return Reach(max(recent) + back + grace, tuple(spans))


def window_dates(facts: ModelFacts, meta: HubMeta, anchor: pd.Timestamp) -> frozenset[date]:
    """The local dates the input window of ``facts``' model anchored at ``anchor`` (hub time) reads."""
    out: set[date] = set()
    for o in set(facts.input_offsets):
        lo, hi = offset_times(meta, o)
        first, last = ((anchor + t).tz_convert(meta.timezone).date() for t in (lo, hi))
        out.update(d.date() for d in pd.date_range(first, last, freq="D"))
    return frozenset(out)


def decisions_reach(models: list[ModelFacts], meta: HubMeta, newest: Mapping[str, date]) -> Reach | None:
    """What a cycle reads of its decisions: those a window it may decide now could already have. A window ends at
    most a horizon before its table's newest reading, and its decisions were made (stamped, and filed by date) no
    earlier than it ended, so they lie from there to the newest decisions date; None when that cannot be told."""
    tables = {f.table for f in models}
    if not models or "decisions" not in newest or any(t not in newest for t in tables):
        return None
    if max(newest[t] for t in tables) > newest["decisions"] + timedelta(days=1):
        return None  # readings dated after the agent's clock (a hub synthesised into the future): no telling
    oldest = min(newest[t] for t in tables)  # a table whose feed stopped days ago: its window is that old
    back = max(offset_times(meta, max(f.target_offsets))[1] for f in models)
    since_then = pd.Timestamp(newest["decisions"]) - pd.Timestamp(oldest)  # decisions are stamped with the clock
    return Reach(max(since_then, pd.Timedelta(0)) + back)


def cycle_reach(
    cfg: AgentConfig,
    models: Iterable[ModelFacts],
    history: pd.Timedelta,
    meta: HubMeta,
    unknown: Iterable[str] = (),
    at: pd.Timestamp | None = None,
    newest: Mapping[str, date] | None = None,
) -> dict[str, Reach]:
    """Per temporal table, what a cycle reads: each served model's :func:`model_reach`, no further back than
    ``history``; the newest days of tables no model reads (the hub's clock); all of ``history`` for the incidents
    and the tables of ``unknown`` domains (a model whose facts the server did not give this cycle). The decisions:
    :func:`decisions_reach` given each table's ``newest`` date folder, else all of ``history``.

    With ``at`` (a replay's anchor, hub time) each model's table also holds the dates of its window there, and the
    decisions are left out of the mapping: the caller reads them whole (those of an old window are that old).
    """
    limit = Reach.of(history)
    out: dict[str, Reach] = {name: Reach(pd.Timedelta(0)) for name, schema in TABLES.items() if schema.temporal}
    for name in WHOLE_HISTORY:
        out[name] = limit
    models = list(models)
    wanted: dict[str, list[Reach]] = {}
    for facts in models:
        wanted.setdefault(facts.table, []).append(model_reach(cfg, facts, meta))
    for table, reaches in wanted.items():
        if table in WHOLE_HISTORY:
            continue
        merged = Reach(max(r.back for r in reaches), tuple(s for r in reaches for s in r.spans))
        out[table] = merged.limit(history)
    for domain in unknown:
        out[DOMAIN_TABLE[domain]] = limit
    decided = decisions_reach(models, meta, newest) if newest is not None and not unknown else None
    if decided is not None:
        out["decisions"] = decided.limit(history)
    if at is not None:
        for facts in models:
            reach = out[facts.table]
            out[facts.table] = replace(reach, also=reach.also | window_dates(facts, meta, at))
        del out["decisions"]
    return out


def target_reach(meta: HubMeta, targets: Mapping[str, Iterable[pd.Timestamp]]) -> dict[str, Reach]:
    """What scoring forecasts older than a cycle's read needs: per table, the local dates of their ``targets`` (hub
    time), and every table's newest dates (the hub's clock says whether their actuals are complete)."""
    out = {name: Reach(pd.Timedelta(0)) for name, schema in TABLES.items() if schema.temporal}
    for table, times in targets.items():
        dates = set()
        for t in times:  # a step's readings (an incident step's events) lie in [t, t + step)
            dates.update({t.date(), (t + meta.step_delta - pd.Timedelta(1)).tz_convert(meta.timezone).date()})
        out[table] = Reach(pd.Timedelta(0), also=frozenset(dates))
    return out
