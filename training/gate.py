"""The promotion gate: a challenger replaces the champion only if it is clearly better and within budgets.

Both models are scored on the SAME window (``evaluate_onnx``); the challenger must improve the primary
metric by a relative margin and stay under the p50 latency and size budgets of ``configs/gate.yaml``.
With no champion, staying within budgets is enough. A challenger that expects another input or answers another
output than the champion (its ONNX metadata says so) cannot replace it at all: serving would refuse the hot swap.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cityagent.config_errors import explain
from cityagent.config_yaml import read_yaml
from cityagent.errors import CityAgentError, ConfigError
from cityagent.training.onnx_eval import Evaluation, evaluate_onnx

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gate.yaml"

__all__ = [
    "Evaluation",
    "GateConfig",
    "Verdict",
    "check_comparable",
    "contract_differences",
    "evaluate_onnx",
    "gate",
    "gate_models",
    "load_gate_config",
]


class GateConfig(BaseModel):
    """Promotion rules.

    Args:
        primary_metric: the metric judged (``mae``, ``rmse`` or ``mape``, from ``evaluate_onnx``).
        greater_is_better: False for errors.
        min_improvement: required relative improvement over the champion (0.02 = 2 %).
        max_latency_ms: budget for p50 latency at batch 1, milliseconds.
        max_size_mb: budget for the ONNX file, MiB.
        latency_runs: timed calls per latency measurement.
    """

    model_config = ConfigDict(extra="forbid")

    primary_metric: Literal["mae", "rmse", "mape"] = "mae"  # what evaluate_onnx scores; another never compares
    greater_is_better: bool = False
    min_improvement: float = Field(0.02, ge=0)
    max_latency_ms: float = Field(50.0, gt=0)
    max_size_mb: float = Field(100.0, gt=0)
    latency_runs: int = Field(30, ge=1)


@dataclass(frozen=True)
class Verdict:
    """The gate's answer: ``promote`` and one sentence per check, passed or failed."""

    promote: bool
    reasons: list[str]


def load_gate_config(path: str | Path | None = None) -> GateConfig:
    """Read a gate YAML (default ``configs/gate.yaml``); unknown keys and bad values are a ConfigError."""
    p = Path(path) if path is not None else DEFAULT_CONFIG
    if not p.is_file():
        if path is None:
            return GateConfig()  # an installed package without the repo's configs/: built-in defaults
        raise ConfigError(f"gate config {p} does not exist; see configs/gate.yaml for an example.")
    raw = read_yaml(p, "gate config") or {}  # invalid YAML is already a one-line ConfigError
    if not isinstance(raw, dict):
        raise ConfigError(f"gate config {p} must be a mapping of GateConfig fields, not {type(raw).__name__}.")
    try:
        return GateConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"gate config {p}: {explain(e, GateConfig)}") from e


def _budgets(ev: Evaluation, cfg: GateConfig) -> list[tuple[bool, str]]:
    lat_ok, size_ok = ev.latency_ms <= cfg.max_latency_ms, ev.size_mb <= cfg.max_size_mb  # NaN fails both
    return [
        (lat_ok, f"p50 latency {ev.latency_ms:.3g} ms {'within' if lat_ok else 'over'} {cfg.max_latency_ms:g} ms"),
        (size_ok, f"size {ev.size_mb:.3g} MB {'within' if size_ok else 'over'} {cfg.max_size_mb:g} MB"),
    ]


def _margin(challenger: Evaluation, champion: Evaluation, cfg: GateConfig) -> tuple[bool, str]:
    m = cfg.primary_metric
    new, old = challenger.metrics.get(m, math.nan), champion.metrics.get(m, math.nan)
    if not (math.isfinite(new) and math.isfinite(old)):
        return False, f"{m} missing or not finite (challenger {new}, champion {old}); cannot compare"
    gain = (new - old) if cfg.greater_is_better else (old - new)
    rel = gain / max(abs(old), 1e-12)
    ok = rel >= cfg.min_improvement
    return ok, (
        f"{m} {new:.4g} vs champion {old:.4g}: {rel:+.1%} ({'meets' if ok else 'below'} the "
        f"required {cfg.min_improvement:.1%})"
    )


def gate(challenger: Evaluation, champion: Evaluation | None, cfg: GateConfig | None = None) -> Verdict:
    """Decide whether ``challenger`` should replace ``champion`` (both scored on the same window).

    Args:
        challenger: the new model's evaluation.
        champion: the current champion's evaluation, or None when there is none.
        cfg: the rules (default: ``load_gate_config()``).
    """
    cfg = cfg or load_gate_config()
    checks = _budgets(challenger, cfg)
    if champion is None:
        checks.append((True, "no champion yet: the challenger only has to meet the budgets"))
    else:
        checks.append(_margin(challenger, champion, cfg))
    return Verdict(all(ok for ok, _ in checks), [why for _, why in checks])


def gate_models(
    challenger_path: str | Path,
    champion_path: str | Path | None,
    x: np.ndarray,
    y: np.ndarray,
    mask: np.ndarray | None = None,
    cfg: GateConfig | None = None,
) -> tuple[Verdict, Evaluation, Evaluation | None]:
    """Score both ONNX files on the same window (x, y, mask) and gate; see ``evaluate_onnx`` for shapes.

    Raises:
        CityAgentError: the two expect different inputs (node ids, window, step, features): one window cannot
            score both fairly, and promoting the challenger would break the champion's clients.
    """
    cfg = cfg or load_gate_config()
    if champion_path:
        check_comparable(challenger_path, champion_path)
    new = evaluate_onnx(challenger_path, x, y, mask, latency_runs=cfg.latency_runs)
    old = evaluate_onnx(champion_path, x, y, mask, latency_runs=cfg.latency_runs) if champion_path else None
    return gate(new, old, cfg), new, old


def contract_differences(challenger_path: str | Path, champion_path: str | Path) -> tuple[list[str], list[str]]:
    """``(input differences, output differences)`` of the challenger against the champion, one phrase per key
    (e.g. ``horizon 4 instead of 3``), from their cityagent ONNX metadata; both empty when either file has none."""
    from cityagent.training.registry.contract import (
        INPUT_KEYS,
        OUTPUT_KEYS,
        input_differences,
        onnx_input,
        output_differences,
    )

    keys = INPUT_KEYS + OUTPUT_KEYS
    new, old = onnx_input(challenger_path, keys), onnx_input(champion_path, keys)
    if not (new and old):
        return [], []
    return input_differences(new, old), output_differences(new, old)


def check_comparable(challenger_path: str | Path, champion_path: str | Path) -> None:
    """Raise when the two ONNX files expect different inputs or answer different outputs, as their cityagent
    metadata records them."""
    inputs, outputs = contract_differences(challenger_path, champion_path)
    if inputs:
        raise CityAgentError(
            f"the challenger {challenger_path} expects a different input than the champion {champion_path} "
            f"({'; '.join(inputs)}): one window cannot score both, and promoting it would break the champion's "
            "clients; train the challenger on the champion's task, or replace the champion by hand (models promote "
            "--force)"
        )
    if outputs:
        raise CityAgentError(
            f"the challenger {challenger_path} answers a different output than the champion {champion_path} "
            f"({'; '.join(outputs)}): the champion's clients would misread it, so serving refuses to hot-swap to it; "
            "train the challenger with the champion's horizon, targets and quantiles, or replace the champion by hand "
            "(models promote --force)"
        )
