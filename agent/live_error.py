"""Learn from reality: keep each forecast until its actuals reach the hub, then record the live error per model.

Forecasts wait as ``$CITYAGENT_HOME/agent/forecasts/<model>/<anchor>-v<version>.npz``; once the hub holds readings
up to a forecast's last target step it is scored on the targets that were observed, one JSON line per forecast in
``$CITYAGENT_HOME/agent/live_error.jsonl`` (model, version, run, window, n, MAE, RMSE), and the file is removed.
"""

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from cityagent.agent.sense import ModelFacts, Window, latest_step, readings
from cityagent.agent.think import Forecast
from cityagent.errors import CityAgentError
from cityagent.home import home_dir
from cityagent.hub.hub import Hub


def agent_dir() -> Path:
    """``$CITYAGENT_HOME/agent``: the loop's own state."""
    path = home_dir() / "agent"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class LiveError:
    """How one forecast did once its actuals arrived (real units; ``n`` targets were observed)."""

    model: str
    version: str
    run_id: str | None
    domain: str
    anchor: str
    first_target: str
    last_target: str
    n: int
    mae: float | None
    rmse: float | None
    scored_at: str


def remember(window: Window, fc: Forecast) -> Path:
    """Keep ``fc`` (made from ``window``) until its actuals arrive."""
    facts = window.facts
    folder = agent_dir() / "forecasts" / facts.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{window.anchor.tz_convert('UTC'):%Y%m%dT%H%M%SZ}-v{fc.version}.npz"
    meta = asdict(facts) | {"version": fc.version, "anchor": window.anchor.isoformat()}
    tmp = path.with_name(f".{path.name}.tmp")  # not *.npz: a reader never sees a half-written forecast
    with tmp.open("wb") as fh:
        np.savez(fh, values=fc.values, targets=window.target_times.asi8, meta=np.array(json.dumps(meta)))
    tmp.replace(path)
    return path


def _load(path: Path) -> tuple[ModelFacts, pd.Timestamp, pd.DatetimeIndex, np.ndarray]:
    with np.load(path) as npz:
        meta = json.loads(str(npz["meta"]))
        values, targets = npz["values"], pd.DatetimeIndex(npz["targets"]).tz_localize("UTC")
    anchor = pd.Timestamp(meta.pop("anchor"))
    meta["input_offsets"], meta["target_offsets"] = tuple(meta["input_offsets"]), tuple(meta["target_offsets"])
    return ModelFacts(**meta), anchor, targets, values


def score_pending(hub: Hub) -> list[LiveError]:
    """Score every waiting forecast whose last target step the hub now covers; returns the new records."""
    out = []
    newest_of: dict[tuple[str, str], pd.Timestamp | None] = {}  # (model, version) → its table's newest step
    for path in sorted((agent_dir() / "forecasts").glob("*/*.npz")):
        facts, anchor, targets, values = _load(path)
        key = (facts.name, facts.version)
        if key not in newest_of:
            try:
                newest_of[key] = latest_step(hub, facts)
            except CityAgentError:
                newest_of[key] = None  # the hub has no readings of these nodes (yet)
        newest = newest_of[key]
        if newest is None:
            continue
        targets = targets.tz_convert(hub.meta.timezone)
        if newest < targets[-1]:
            continue
        actual = readings(hub, facts.table, facts.nodes, [facts.target], targets)[:, :, 0]  # [H, N]
        seen = np.isfinite(actual)
        err = (values.astype(np.float64) - actual)[seen]
        record = LiveError(
            facts.name, facts.version, facts.run_id, facts.domain, anchor.isoformat(), targets[0].isoformat(),
            targets[-1].isoformat(), int(seen.sum()), float(np.abs(err).mean()) if err.size else None,
            float(np.sqrt((err**2).mean())) if err.size else None, datetime.now(UTC).isoformat(timespec="seconds"),
        )  # fmt: skip
        with (agent_dir() / "live_error.jsonl").open("a") as fh:
            fh.write(json.dumps(asdict(record)) + "\n")
        path.unlink()
        out.append(record)
    return out


def live_errors(model: str | None = None) -> pd.DataFrame:
    """Every recorded live error (of ``model``), oldest first, as a table."""
    path = agent_dir() / "live_error.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line] if path.is_file() else []
    df = pd.DataFrame(rows, columns=list(LiveError.__dataclass_fields__))
    return df if model is None else df[df["model"] == model].reset_index(drop=True)


def recent_mae(model: str, version: str, since: pd.Timestamp) -> float | None:
    """Live MAE of ``model`` version ``version`` over forecasts whose last target is at or after ``since``.

    Weighted by the number of observed targets; None when nothing was scored yet.
    """
    df = live_errors(model)
    df = df[(df["version"] == version) & (df["n"] > 0)]
    df = df[pd.to_datetime(df["last_target"], utc=True) >= since.tz_convert("UTC")]
    if df.empty:
        return None
    return float((df["mae"] * df["n"]).sum() / df["n"].sum())
