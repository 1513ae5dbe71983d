"""Served models for the agent tests: parameter-free baselines fitted to a synthetic hub, exported to ONNX.

Built with the training code path (protocol → scaled model → bundle → ONNX), so their metadata is what the agent
meets in production, without MLflow or a training loop.
"""

from pathlib import Path

import numpy as np

from cityagent.hub.hub import Hub
from cityagent.hub.protocols import build_task
from cityagent.hub.synth import SynthParams, synthesize
from cityagent.training.build import build_scaled_model
from cityagent.training.config import load_config
from cityagent.training.onnx_export import export_bundle
from cityagent.training.report import make_bundle
from cityagent.training.task import fingerprint, task_name, task_params

BASELINES = {"traffic": "last_value", "demand": "ha", "risk": "risk_ha"}
PARAMS = {
    "traffic": {"input_len": 6, "horizon": 12, "graph_kind": "road"},
    "demand": {"columns": ["count", "supply"], "input_len": 6, "horizon": 6, "graph_kind": "neighbor"},
    "risk": {"input_len": 6, "horizon": 12, "scaler": "minmax", "graph_kind": "neighbor"},
}


def synthetic_city(out: Path, days: int, start: str = "2026-03-02") -> Path:
    """The agent tests' city: 8 sensors, 4 zones, accidents frequent enough to rank risk cells."""
    params = SynthParams(accident_rate=2e-2)
    return synthesize(out, sensors=8, zones=4, days=days, seed=2, start=start, progress=False, params=params)


def export_baselines(hub: Hub, out: Path) -> dict[str, Path]:
    """``{served name: .onnx path}`` of one baseline per domain; run ids are ``run-<domain>``."""
    paths = {}
    for domain, model in BASELINES.items():
        cfg = load_config(None, {"task.domain": domain, "task.params": PARAMS[domain], "model.name": model})
        task = build_task(hub, "strict", **task_params(cfg.task))
        net, params = build_scaled_model(task, cfg.model)
        bundle = make_bundle(
            cfg, task, fingerprint(task, "tests"), f"run-{domain}", "baseline", net.state_dict(), params
        )
        x, _, _ = task.test.arrays()
        name = task_name(cfg.task)
        paths[name] = export_bundle(bundle, out / f"{name}.onnx", sample_x=np.asarray(x[:4]))
    return paths
