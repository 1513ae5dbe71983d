"""A deep model's forecasts for held-out periods, each trained on the windows before it (the selection scripts'
blends): early-stopped on the newest 10 % of those windows, as the protocols split validation, seeds averaged."""

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def deep_period_forecasts(
    tree: dict,
    overrides: dict,
    periods: list[tuple[np.ndarray, np.ndarray]],
    seeds: tuple[int, ...] = (0, 1, 2),
    label: str = "deep",
) -> list[np.ndarray]:
    """Real-unit forecasts ``[S, H, N]`` per period ``(fit anchors, scored anchors)``, anchors into the task's
    arrays (oldest first); ``tree`` is the config (task, model, train), ``overrides`` dotted keys on top."""
    from cityagent.training.build import build_scaled_model
    from cityagent.training.config import load_config
    from cityagent.training.data import predict_split, torch_predictor
    from cityagent.training.local import train_local
    from cityagent.training.task import load_task

    out = []
    for fit, scored in periods:
        preds = []
        for seed in seeds:
            cfg = load_config(None, overrides | {"train.seed": seed}, **tree)
            task, _ = load_task(cfg.task)
            inner = max(1, round(0.1 * len(fit)))
            part = replace(
                task,
                train=replace(task.train, anchors=fit[:-inner]),
                val=replace(task.val, anchors=fit[-inner:]),
                test=replace(task.val, anchors=scored),
            )
            with tempfile.TemporaryDirectory() as folder:
                trained = train_local(part, cfg, folder)
            model, _ = build_scaled_model(part, cfg.model, None)
            model.load_state_dict(trained.state_dict)
            preds.append(predict_split(torch_predictor(model), part.test))
            note = f"  {label} [{scored[0]}, {scored[-1]}] seed {seed}: best epoch {trained.best_epoch}"
            print(note, file=sys.stderr, flush=True)
        out.append(np.mean(preds, 0))
    return out
