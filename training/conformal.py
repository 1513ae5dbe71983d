"""Conformal calibration of a trained deep quantile model (``train.conformal``): the margin from its validation
forecasts (``cityagent.models.conformal``), set inside the model so bundles and ONNX exports carry it."""

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cityagent import durations
from cityagent.errors import ConfigError
from cityagent.hub.protocols import TaskData
from cityagent.models.conformal import cqr_margin
from cityagent.models.scaled import ScaledModel
from cityagent.training.config import RunConfig
from cityagent.training.data import predict_split, torch_predictor
from cityagent.training.metrics import quantile_metrics

log = logging.getLogger(__name__)


def check_conformal(cfg: RunConfig, kind: str) -> None:
    """``train.conformal`` calibrates a deep model's interval: it needs ≥ 2 quantile levels."""
    if not cfg.train.conformal:
        return
    if kind != "deep":
        raise ConfigError(
            f"train.conformal calibrates deep quantile models; {cfg.model.name!r} is {kind}. "
            "gbrt_demand has its own: model.params.conformal=true."
        )
    if len(cfg.train.quantiles or []) < 2:
        raise ConfigError(
            f"train.conformal needs an interval to calibrate: train.quantiles={cfg.train.quantiles!r}; "
            "set at least two levels, e.g. train.quantiles=[0.1,0.5,0.9] with train.loss=quantile"
        )


def calibrate(model: ScaledModel, task: TaskData, quantiles: Sequence[float]) -> dict[str, float]:
    """Set ``model``'s conformal margin from its validation forecasts; returns what to log (the margin per step,
    validation coverage before and after).

    Validation also picked the epoch, a mild reuse the margin inherits; it is the only split deep training holds
    out, and the test split stays unseen."""
    _, y, observed = task.val.arrays()
    mask = observed & np.asarray(task.eval_mask, dtype=bool)[None, None, :]
    targets = task.val.target_times()  # [S, H]
    days = (
        (targets.max() - targets.min() + durations.step_delta(task.step)) / pd.Timedelta(days=1)
        if targets.size
        else 0.0
    )
    if days < 7:  # weekday/weekend mixes differ: the margin may not carry to the days after (notebook 05)
        log.warning(
            "train.conformal calibrates on a validation split of %.1f days, less than a week: its margin may not "
            "carry to other days of the week; compare val_coverage_uncalibrated with a later period, or give "
            "validation a longer share",
            days,
        )
    before = predict_split(torch_predictor(model), task.val)
    margin = cqr_margin(before, y, tuple(quantiles), mask)
    after = predict_split(torch_predictor(model.set_margin(margin)), task.val)
    logged = {f"conformal_margin_h{h + 1}": float(m) for h, m in enumerate(margin)} | {"conformal_val_days": days}
    logged["val_coverage_uncalibrated"] = quantile_metrics(y, before, quantiles, mask)["coverage"]
    logged["val_coverage_calibrated"] = quantile_metrics(y, after, quantiles, mask)["coverage"]
    log.info(
        "conformal margin per step %s; validation coverage %.1f%% -> %.1f%%",
        np.round(margin, 4).tolist(),
        logged["val_coverage_uncalibrated"],
        logged["val_coverage_calibrated"],
    )
    return logged
