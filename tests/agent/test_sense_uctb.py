"""Sense for UCTB-protocol models: the period and trend frames a week back are the same step, read twice."""

import numpy as np
import pandas as pd

from cityagent.agent.sense import ModelFacts, sense
from cityagent.hub import Hub, HubMeta
from cityagent.hub.importers.datasets import import_known
from cityagent.hub.protocols import build_task

TZ = "Asia/Shanghai"


def facts_of(nodes: list[str], offsets: tuple[int, ...], features: list[str]) -> ModelFacts:
    return ModelFacts(
        name="demand-uctb",
        version="1",
        domain="demand",
        nodes=nodes,
        step="1h",
        input_offsets=offsets,
        target_offsets=(1,),
        feature_names=features,
        target="count",
    )


def test_a_repeated_offset_reads_its_step_twice():
    times = pd.date_range(pd.Timestamp("2026-03-02", tz=TZ), periods=24 * 9, freq="1h")
    demand = pd.DataFrame({"zone_id": "z0", "ts": times, "count": np.arange(len(times), dtype=float)})
    hub = Hub({"demand": demand}, HubMeta(step="1h", timezone=TZ))
    offsets = (-168, -24, -24, -1, 0)  # a day back as period and trend alike
    w = sense(hub, facts_of(["z0"], offsets, ["count"]))
    assert w.x.shape == (1, 5, 1, 1)
    last = len(times) - 1
    assert w.x[0, :, 0, 0].tolist() == [last + o for o in offsets]


def test_the_metro_window_equals_the_training_window(shared_data):
    hub = import_known("metro-chongqing", data_dir=shared_data)
    task = build_task(hub, "uctb", calendar=["tod"])
    spec = task.test.spec
    assert len(set(spec.input_offsets)) < len(spec.input_offsets), "UCTB's week-back frame should repeat"
    facts = facts_of(task.nodes, spec.input_offsets, task.feature_names)
    x, _, _ = task.test.batch([-1])  # [1, T_in, N, F], real units
    last = task.test.anchors[-1]
    w = sense(hub, facts, at=task.test.times[last])
    np.testing.assert_array_equal(w.x, x)
    assert w.target_times[0] == task.test.times[last + 1]
