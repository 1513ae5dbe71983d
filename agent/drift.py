"""Drift watch: do recent inputs (or live error) still look like what the model was trained and tested on?

A training run logs a small reference (``reference_from``): per channel, 101 quantiles (for the KS statistic),
quantile bins with their fractions (for PSI), mean and std, per-node means, plus the test metrics. The agent
later compares recent hub values and live MAE against it (``drift_report``) and retrains at most once per period
(``should_retrain``).
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cityagent import durations
from cityagent.agent.agent_config import DriftConfig
from cityagent.agent.drift_stats import LEVELS, bin_fractions, ks_statistic, psi
from cityagent.errors import ConfigError

REFERENCE_ARTIFACT = "drift_reference.json"  # the name a training run logs the reference under


@dataclass
class DriftReport:
    """The verdict: ``drifted`` with one reason per threshold crossed, every score computed, and notes."""

    drifted: bool
    reasons: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. too few recent readings for a verdict


def _finite(values: ArrayLike) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    return a[np.isfinite(a)]


def _node_means(a: np.ndarray) -> np.ndarray:
    """Mean of each column of ``[T, N]`` over its finite values; NaN for a column with none."""
    ok = np.isfinite(a)
    count, total = ok.sum(axis=0), np.where(ok, a, 0.0).sum(axis=0)
    return np.divide(total, count, out=np.full(a.shape[1], np.nan), where=count > 0)


def reference_from(
    values: Mapping[str, ArrayLike],
    *,
    metrics: Mapping[str, float] | None = None,
    nodes: list[str] | None = None,
    bins: int = 10,
) -> dict[str, Any]:
    """Summarise training inputs per channel as a small JSON-ready dict.

    Args:
        values: channel name → values ``[T]`` (pooled) or ``[T, N]`` (per node); NaN = absent.
        metrics: test metrics of the trained model in real units, e.g. ``{"mae": 4.1}``.
        nodes: ids of the N columns (default ``"0"…"N-1"``); per-node means are kept for ``[T, N]`` input.
        bins: quantile bins for PSI.
    """
    ref: dict[str, Any] = {"version": 1, "bins": bins, "channels": {}, "metrics": dict(metrics or {})}
    for name, arr in values.items():
        a = np.asarray(arr, dtype=np.float64)
        flat = _finite(a)
        if flat.size < 2:
            raise ConfigError(f"drift reference: channel {name!r} has {flat.size} finite value(s); need at least 2")
        edges = np.unique(np.quantile(flat, np.linspace(0, 1, bins + 1))[1:-1])
        entry = {
            "n": int(flat.size),
            "mean": float(flat.mean()),
            "std": float(flat.std()),
            "quantiles": np.quantile(flat, LEVELS).tolist(),
            "edges": edges.tolist(),
            "fractions": bin_fractions(edges, flat).tolist(),
        }
        if a.ndim == 2:
            ids = list(nodes) if nodes is not None else [str(i) for i in range(a.shape[1])]
            if len(ids) != a.shape[1]:
                raise ConfigError(f"drift reference: {len(ids)} node ids for {a.shape[1]} columns of {name!r}")
            means = _node_means(a)
            # a node without readings keeps None (JSON null), and is left out of node_fraction later
            entry["node_mean"] = {n: float(m) if np.isfinite(m) else None for n, m in zip(ids, means, strict=True)}
        ref["channels"][name] = entry
    return ref


def _channel(
    name: str, entry: dict, recent: np.ndarray, nodes: list[str] | None, cfg: DriftConfig, out: DriftReport
) -> None:
    flat = _finite(recent)
    out.scores[f"{name}.n"] = float(flat.size)
    if flat.size < cfg.min_samples:
        out.notes.append(f"{name}: {flat.size} recent value(s) < min_samples {cfg.min_samples}; no verdict")
        return
    std = max(entry["std"], 1e-9)
    checks = {
        "psi": (psi(entry["fractions"], bin_fractions(np.asarray(entry["edges"]), flat)), cfg.psi),
        "ks": (ks_statistic(entry["quantiles"], flat), cfg.ks),
        "mean_shift": (float(abs(flat.mean() - entry["mean"]) / std), cfg.mean_shift),
    }
    if recent.ndim == 2 and "node_mean" in entry:
        ids = nodes if nodes is not None else [str(i) for i in range(recent.shape[1])]
        means = _node_means(recent)
        shifts = [
            abs(m - entry["node_mean"][n]) / std
            for n, m in zip(ids, means, strict=True)
            if entry["node_mean"].get(n) is not None and np.isfinite(m)
        ]
        if shifts:
            checks["node_fraction"] = (float(np.mean(np.asarray(shifts) > cfg.mean_shift)), cfg.node_fraction)
    for key, (score, limit) in checks.items():
        out.scores[f"{name}.{key}"] = score
        if score > limit:
            out.reasons.append(f"{name}: {key} {score:.3f} > {limit:g}")


def drift_report(
    reference: Mapping[str, Any],
    recent_values: Mapping[str, ArrayLike],
    live_error: float | None = None,
    cfg: DriftConfig | None = None,
    *,
    nodes: list[str] | None = None,
) -> DriftReport:
    """Compare recent inputs (and live MAE) with a training reference.

    Args:
        reference: from ``reference_from`` (or its JSON).
        recent_values: channel → recent values ``[T]`` or ``[T, N]``, in the reference's units.
        live_error: recent MAE of the served model in real units; compared with the reference's test ``mae``.
        cfg: thresholds (default ``DriftConfig()``).
        nodes: ids of the N columns of ``[T, N]`` input, matched with the reference's per-node means.
    """
    cfg = cfg or DriftConfig()
    common = [c for c in reference.get("channels", {}) if c in recent_values]
    if not common and live_error is None:
        have = list(reference.get("channels", {}))
        raise ConfigError(f"recent values name no channel of the drift reference (it has {have})")
    out = DriftReport(drifted=False)
    for name in common:
        _channel(name, reference["channels"][name], np.asarray(recent_values[name], dtype=np.float64), nodes, cfg, out)
    if live_error is not None:
        test_mae = reference.get("metrics", {}).get("mae")
        if not test_mae:
            out.notes.append("live error given but the reference has no test mae; error drift not checked")
        else:
            ratio = float(live_error) / float(test_mae)
            out.scores["error_ratio"] = ratio
            if ratio > cfg.error_ratio:
                out.reasons.append(
                    f"live MAE {live_error:.3f} is {ratio:.2f}x the test MAE {test_mae:.3f} (> {cfg.error_ratio:g}x)"
                )
    out.drifted = bool(out.reasons)
    return out


def should_retrain(
    report: DriftReport,
    last_retrain_time: datetime | None,
    min_period: timedelta | str,
    now: datetime | None = None,
) -> bool:
    """Drift asks for a retrain, but at most once per ``min_period`` (a timedelta or '1d', '12h')."""
    if not report.drifted:
        return False
    if last_retrain_time is None:
        return True
    period = (
        durations.duration(min_period, "retrain.min_period").to_pytimedelta()
        if isinstance(min_period, str)
        else min_period
    )
    now = now or datetime.now(UTC)
    if last_retrain_time.tzinfo is None or now.tzinfo is None:
        raise ConfigError("should_retrain needs timezone-aware times; use datetime.now(UTC)")
    return now - last_retrain_time >= period


def save_reference(reference: Mapping[str, Any], path: str | Path) -> Path:
    """Write the reference as JSON (what a training run logs as ``drift_reference.json``)."""
    p = Path(path)
    p.write_text(json.dumps(reference, indent=1))
    return p


def load_reference(path: str | Path) -> dict[str, Any]:
    """Read a reference written by ``save_reference``."""
    p = Path(path)
    try:
        ref = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read drift reference {p}: {e}; log one with reference_from at training") from e
    if ref.get("version") != 1 or "channels" not in ref:
        raise ConfigError(f"{p} is not a drift reference (version 1 with channels)")
    return ref
