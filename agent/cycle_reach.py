"""What one agent cycle reads of the hub: for each table a served model reads, the recent days its drift window,
usual demand and waiting forecasts need, and the dates its input frames fall on further back.

``loop.history`` stays the furthest any of it reaches. A 5-minute traffic model with a one-hour input then costs
the cycle about three days of traffic, not 36; a model with period and trend frames (UCTB's: the same hour 1–7 days
and 1–4 weeks back) adds the dates of those frames, not the weeks between them.
"""

from collections.abc import Iterable

import pandas as pd

from cityagent import durations
from cityagent.agent.agent_config import AgentConfig
from cityagent.agent.sense import DOMAIN_TABLE, ModelFacts
from cityagent.hub.reach import Reach
from cityagent.hub.schema import TABLES

# read as far as loop.history whatever the models: the agent's own decisions (a restarted agent must see what it
# decided for the window it is about to decide), and incidents: a risk window ends at the hub's clock, not at the
# newest incident, which may be days older, so counting back from the table's own newest date would miss frames
# (events are few: weeks of them are small)
WHOLE_HISTORY = ("decisions", "incidents")


def model_reach(cfg: AgentConfig, facts: ModelFacts) -> Reach:
    """What ``facts``' model needs of its table this cycle, counted back from the table's newest reading."""
    step = durations.step_delta(facts.step)
    # the window ends up to a horizon before the newest reading (the newest step every node has reported)
    back = max(facts.target_offsets) * step
    recent = [durations.duration(cfg.drift.window, "drift.window")]  # drift compares this much with training
    if facts.domain == "demand":
        recent.append(pd.Timedelta(days=cfg.alerts.usual_days))  # each zone's usual demand at the target hours
    # forecasts wait for their targets, and up to loop.score_grace more for late readings, before they are scored;
    # one older than what is read is scored on the whole hub, read once for it
    grace = durations.duration(cfg.loop.score_grace, "loop.score_grace")
    spans = tuple((o * step - back, o * step) for o in sorted(set(facts.input_offsets)))
    return Reach(max(recent) + back + grace, spans)


def cycle_reach(
    cfg: AgentConfig, models: Iterable[ModelFacts], history: pd.Timedelta, unknown: Iterable[str] = ()
) -> dict[str, Reach]:
    """Per temporal table, what a cycle reads: each served model's :func:`model_reach`, no further back than
    ``history``; the newest days of tables no model reads (the hub's clock); all of ``history`` for the decisions,
    the incidents and the tables of ``unknown`` domains (a model whose facts the server did not give this cycle)."""
    limit = Reach.of(history)
    out: dict[str, Reach] = {name: Reach(pd.Timedelta(0)) for name, schema in TABLES.items() if schema.temporal}
    for name in WHOLE_HISTORY:
        out[name] = limit
    wanted: dict[str, list[Reach]] = {}
    for facts in models:
        wanted.setdefault(facts.table, []).append(model_reach(cfg, facts))
    for table, reaches in wanted.items():
        if table in WHOLE_HISTORY:
            continue
        merged = Reach(max(r.back for r in reaches), tuple(s for r in reaches for s in r.spans))
        out[table] = merged.limit(history)
    for domain in unknown:
        out[DOMAIN_TABLE[domain]] = limit
    return out
