"""Build the model a config names for a task: the registry model with the task's shapes, wrapped in real units."""

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from cityagent import durations
from cityagent.errors import ConfigError
from cityagent.hub.protocols import TaskData
from cityagent.models.params import COMMON_PARAMS
from cityagent.models.registry import build_model, domain_note
from cityagent.models.scaled import ScaledModel
from cityagent.training.config import ModelConfig

log = logging.getLogger(__name__)


def target_channel(task: TaskData) -> int:
    """Index of the target among the input features (the protocols put it first unless they say otherwise)."""
    target = task.extra.get("target")
    return task.feature_names.index(target) if target in task.feature_names else 0


def build_params(task: TaskData, model: ModelConfig, quantiles: Sequence[float] | None = None) -> dict[str, Any]:
    """The common params from the task (shapes, graph, grid, quantiles) plus the model's own hyperparameters."""
    clash = sorted(set(model.params) & set(COMMON_PARAMS))
    if clash:
        raise ConfigError(
            f"model.params sets {clash}, which come from the task; set them under task.params "
            f"(input_len, horizon) or train.quantiles instead"
        )
    common = {
        "num_nodes": len(task.nodes),
        "in_features": len(task.feature_names),
        "input_len": task.input_len,
        "horizon": task.horizon,
        "target_channel": target_channel(task),
        "adjacency": task.adjacency,
        "grid": tuple(task.extra["grid"]) if task.extra.get("grid") else None,
        "quantiles": tuple(quantiles) if quantiles else None,
    }
    own = dict(model.params)
    if own.get("steps_per_day") == "auto":  # time-of-day slots follow the hub's step (288 at 5 min, 96 at 15 min)
        own["steps_per_day"] = slots_per_day(task.step)
    return {**{k: v for k, v in common.items() if v is not None}, **own}  # absent facts stay absent


def slots_per_day(step: str) -> int:
    """Steps in a day at ``step`` (a pandas offset alias); a ConfigError when a day is no whole number of them."""
    delta = durations.step_delta(step)
    slots, rest = divmod(pd.Timedelta("1D"), delta)
    if rest or not slots:
        raise ConfigError(
            f"model.params.steps_per_day=auto: a day is not a whole number of the hub's {step} steps; "
            "set steps_per_day to the number of time-of-day slots you want"
        )
    return int(slots)


def target_floor(task: TaskData) -> float | None:
    """0 when no observed training target is negative (trips, risk, speeds), else None (no clipping).

    Read from the training windows' targets only, so the test split does not decide how forecasts are clipped.
    """
    split = task.train
    if not len(split):
        return None
    y = split.y[split.anchors[:, None] + np.asarray(split.spec.target_offsets)[None, :]]  # [S, H, N]
    observed = y[~np.isnan(y)]
    return 0.0 if observed.size and float(observed.min()) >= 0 else None


def scaled(task: TaskData, net: Any) -> ScaledModel:
    """``net`` (scaled space) wrapped so it takes and returns real units, with the task's fitted scalers, its
    outputs clipped at the target's floor (``target_floor``)."""
    xs, ys = task.x_scaler, task.y_scaler
    model = ScaledModel(net, xs.scale, xs.offset, float(ys.scale[0]), float(ys.offset[0]))
    return model.set_floor(target_floor(task))


def build_scaled_model(
    task: TaskData, model: ModelConfig, quantiles: Sequence[float] | None = None
) -> tuple[ScaledModel, dict[str, Any]]:
    """``(ScaledModel, build params)`` for an nn.Module model; the params rebuild it through the registry."""
    params = build_params(task, model, quantiles)
    return scaled(task, build_model(model.name, **params)), params


def check_buildable(
    task: TaskData, model: ModelConfig, quantiles: Sequence[float] | None = None, domain: str | None = None
) -> None:
    """Build the model once, before an MLflow run opens, so a bad ``model.params`` value fails as a ConfigError
    naming it (not a torch traceback after the run has started, leaving a FAILED run behind).

    With the task's ``domain``, a model registered for another domain is a warning (many run anywhere: gbrt_demand
    on traffic, gwnet on a demand graph), and an error building it says which models the domain has.
    """
    note = domain_note(model.name, domain) if domain else None
    if note:
        log.warning("%s; it runs on this task only if its inputs fit, and was not tuned for it", note)
    params = build_params(task, model, quantiles)
    try:
        built = build_model(model.name, **params)
        if hasattr(built, "check_params"):  # classical models: scikit-learn checks its params only in fit()
            built.check_params()
        if isinstance(built, nn.Module):
            check_forward(task, built, model.name, quantiles)
    except ConfigError as e:
        if not note:
            raise
        raise ConfigError(f"{str(e).rstrip('.')} ({note}).") from e
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:  # a constructor choking on a value
        why = str(e).rstrip(".")  # scikit-learn's messages end in a full stop
        raise ConfigError(
            f"model {model.name!r} cannot be built from model.params {dict(model.params)}: {why}; check each value's "
            "type and range (docs/configuration.md lists them)"
        ) from e


def check_forward(task: TaskData, net: nn.Module, name: str, quantiles: Sequence[float] | None = None) -> None:
    """One forward pass of ``net`` on two of the task's windows, so a model that breaks the contract (``x [B, T_in, N,
    F]`` → ``[B, H, N]``, or ``[B, H, N, Q]`` with quantiles) is a ConfigError saying so, before an MLflow run opens,
    not a shape error deep inside the loss or Lightning."""
    split = next((s for s in (task.train, task.val, task.test) if len(s)), None)
    if split is None:
        return
    x, y, _ = split.batch(np.arange(min(2, len(split))))  # [B, T_in, N, F], [B, H, N]: what the loss compares
    x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    want = [*y.shape, *([len(quantiles)] if quantiles else [])]
    contract = (
        "a model's forward takes one tensor x [B, T_in, N, F] (batch, input steps, nodes, features; scaled) and "
        f"returns [B, H, N{', Q' if quantiles else ''}] (H: horizon steps{', Q: quantile levels' if quantiles else ''})"
    )
    try:
        with torch.no_grad():
            out = scaled(task, net.eval()).forward_scaled(x)
    except ConfigError:
        raise
    except Exception as e:  # any error of the model's own code: said with the shapes it was given
        why = (str(e).strip().splitlines() or [""])[0]
        raise ConfigError(
            f"model {name!r} failed on x of shape {list(x.shape)} ({type(e).__name__}: {why}); {contract}"
        ) from e
    got = list(out.shape) if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
    if got != want:
        raise ConfigError(f"model {name!r} returned {got} for x of shape {list(x.shape)}, not {want}; {contract}")
