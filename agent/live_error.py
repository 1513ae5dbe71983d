"""Learn from reality: keep each forecast until its actuals reach the hub it was made on, then record its live error.

Forecasts wait as ``$CITYAGENT_HOME/agent/forecasts/<model>/<anchor>-v<version>-h<hub id>.npz`` and are scored only
against the hub they were made on (``hub_identity``: its resolved path and its manifest), never against another
hub the agent is later pointed at. A forecast is scored once its actuals are complete:

- every target it forecast (each step × node) has a reading (coverage 1), or
- the hub's clock (the newest step of the forecast's table) is the grace (``loop.score_grace``, 1 h by default)
  past its last target: readings still missing then count as lost, and it is scored on the targets observed.

Incidents are events with nothing to say a cell has reported, so a risk forecast always waits out the grace (past
the hub's newest step of any table) and counts every cell as observed. Each scored forecast is one JSON line in
``$CITYAGENT_HOME/agent/live_error.jsonl`` (model, version, run, window, n, coverage, MAE, RMSE, hub) and its file is
removed. A forecast of the same (model, version, anchor, hub) is remembered and scored once, across restarts.
Records are appended on a fresh line and fsynced; a torn line (a full disk, a power loss) is skipped with a warning.
"""

import calendar
import hashlib
import json
import os
import re
import sys
from array import array
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from cityagent.agent.durable import append_lines, parse_line, read_lines
from cityagent.agent.sense import ModelFacts, Window, readings
from cityagent.agent.think import Forecast
from cityagent.home import home_dir
from cityagent.hub.hub import Hub, HubMeta

SCORE_GRACE = pd.Timedelta("1h")  # default loop.score_grace: how long late readings may still arrive (hub time)
_HUB_SUFFIX = re.compile(r"-h[0-9a-f]{12}\.npz$")  # what remember() names a forecast: ...-v<version>-h<hub id>.npz
EVENT_TABLES = ("traffic", "demand", "incidents", "weather")  # what moves a hub's clock for incident forecasts


def agent_dir() -> Path:
    """``$CITYAGENT_HOME/agent``: the loop's own state."""
    path = home_dir() / "agent"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class HubId:
    """Which hub a forecast was made on: its resolved ``path`` and ``id``, a digest of the path and manifest."""

    path: str
    id: str


def hub_identity(hub_dir: str | Path, meta: HubMeta) -> HubId:
    """The identity of the hub at ``hub_dir``: another directory, or another hub written there (another name,
    source, step or timezone), is another hub; appended readings and decisions keep it the same."""
    path = str(Path(hub_dir).resolve())
    facts = json.dumps([path, meta.name, meta.source, meta.step, meta.timezone])
    return HubId(path, hashlib.sha256(facts.encode()).hexdigest()[:12])


@dataclass(frozen=True)
class LiveError:
    """How one forecast did once its actuals arrived (real units).

    ``n`` targets were observed, a ``coverage`` share of the forecast's steps × nodes (below 1 only when it was
    scored after the grace with readings missing); ``hub`` is the hub it was made on and scored against.
    """

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
    coverage: float | None = None  # None in rows written before coverage was recorded
    hub: str | None = None
    hub_id: str | None = None


Key = tuple[str, str, str, str | None]  # (model, version, anchor, hub id)
Group = tuple[str, str, str | None]  # (model, version, hub id)


@dataclass
class _Ledger:
    """What ``live_error.jsonl`` holds, kept as the agent needs it and read only where it grew since last time.

    A year of 5-minute cycles of three models is ~315,000 records (~120 MiB). Per (model, version, hub id) it keeps
    the anchors scored (so none is scored twice) and, of each record with observed targets, its last target, its
    number of targets and its summed absolute error, for the drift's live MAE: ~100 bytes a record, where reading
    the whole file into a table took seconds and ~1 GB for each model every cycle (BENCHMARKS.md).
    """

    offset: int = 0  # bytes read
    lines: int = 0  # lines read (for the line numbers of warnings)
    anchors: dict[Group, set[int]] = field(default_factory=dict)  # scored anchors, ns since the epoch
    errors: dict[Group, tuple[array, array, array]] = field(default_factory=dict)  # last target ns, n, n × MAE

    def add(self, r: dict) -> None:
        if not {"model", "version", "anchor"} <= r.keys():
            return
        anchor = _ns(r["anchor"])
        if anchor is None:  # not a record of ours: nothing to key it on
            return
        group = (sys.intern(str(r["model"])), sys.intern(str(r["version"])), r.get("hub_id"))
        self.anchors.setdefault(group, set()).add(anchor)
        n, mae, last = r.get("n"), r.get("mae"), _ns(r.get("last_target"))
        if isinstance(n, int | float) and n > 0 and isinstance(mae, int | float) and last is not None:
            ends, counts, sums = self.errors.setdefault(group, (array("q"), array("d"), array("d")))
            ends.append(last)
            counts.append(float(n))
            sums.append(float(n) * float(mae))

    def scored(self, model: str, version: str, anchor: pd.Timestamp, hub_id: str | None) -> bool:
        return anchor.value in self.anchors.get((model, version, hub_id), ())


READ_CHUNK = 1 << 22  # bytes of live_error.jsonl parsed at a time
_SCORED_AT = re.compile(rb'"scored_at": "([^"]*)"')  # as json.dumps writes the field
_ledgers: dict[Path, _Ledger] = {}  # live_error.jsonl → what has been read of it


def _ns(stamp: object) -> int | None:
    """An ISO timestamp as ns since the epoch (UTC; one without an offset is read as UTC); None if it is none."""
    try:
        t = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        try:
            t = pd.Timestamp(stamp).to_pydatetime()  # a spelling fromisoformat does not take
        except (TypeError, ValueError):
            return None
        if pd.isna(t):
            return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return (calendar.timegm(t.utctimetuple()) * 1_000_000 + t.microsecond) * 1000


def _ledger() -> _Ledger:
    """The ledger of ``live_error.jsonl``, brought up to date with what was appended since the last call."""
    path = agent_dir() / "live_error.jsonl"
    ledger = _ledgers.get(path) or _Ledger()
    size = path.stat().st_size if path.is_file() else 0
    if size < ledger.offset:  # the file was truncated or replaced: read it afresh
        ledger = _Ledger()
    if size > ledger.offset:
        with path.open("rb") as fh:
            fh.seek(ledger.offset)
            left, carry = size - ledger.offset, b""
            while left > 0:  # in chunks: a year's file is never in memory at once
                data = fh.read(min(READ_CHUNK, left))
                if not data:
                    break
                left -= len(data)
                chunk = carry + data
                cut = chunk.rfind(b"\n") + 1  # a line still being written is read next time
                whole, carry = chunk[:cut], chunk[cut:]
                for line in whole.splitlines():
                    ledger.lines += 1
                    r = parse_line(path, ledger.lines, line) if line.strip() else None  # torn: warned, skipped
                    if r is not None:
                        ledger.add(r)
                ledger.offset += len(whole)
    _ledgers[path] = ledger
    return ledger


def was_scored(model: str, version: str, anchor: pd.Timestamp, hub_id: str | None) -> bool:
    """Whether a live error of ``model`` ``version``'s forecast from ``anchor`` on hub ``hub_id`` is recorded."""
    return _ledger().scored(model, version, anchor, hub_id)


def remember(window: Window, fc: Forecast, hub: HubId) -> Path | None:
    """Keep ``fc`` (made from ``window`` on ``hub``) until its actuals arrive; None when this forecast is already
    waiting or was already scored (a restart, or a replay of the same window)."""
    facts = window.facts
    folder = agent_dir() / "forecasts" / facts.name
    path = folder / f"{window.anchor.tz_convert('UTC'):%Y%m%dT%H%M%SZ}-v{fc.version}-h{hub.id}.npz"
    if path.exists() or was_scored(facts.name, fc.version, window.anchor, hub.id):
        return None
    folder.mkdir(parents=True, exist_ok=True)
    meta = asdict(facts) | {"version": fc.version, "anchor": window.anchor.isoformat(), "hub": asdict(hub)}
    tmp = path.with_name(f".{path.name}.tmp")  # not *.npz: a reader never sees a half-written forecast
    try:
        with tmp.open("wb") as fh:
            np.savez(fh, values=fc.values, targets=window.target_times.asi8, meta=np.array(json.dumps(meta)))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:  # e.g. a full disk: no temporary file left behind
        tmp.unlink(missing_ok=True)
        raise
    return path


def _load(path: Path) -> tuple[ModelFacts, pd.Timestamp, pd.DatetimeIndex, np.ndarray]:
    with np.load(path) as npz:
        meta = json.loads(str(npz["meta"]))
        values, targets = npz["values"], pd.DatetimeIndex(npz["targets"]).tz_localize("UTC")
    anchor = pd.Timestamp(meta.pop("anchor"))
    meta.pop("hub", None)
    meta["input_offsets"], meta["target_offsets"] = tuple(meta["input_offsets"]), tuple(meta["target_offsets"])
    return ModelFacts(**meta), anchor, targets, values


def hub_clock(hub: Hub, table: str) -> pd.Timestamp | None:
    """The newest step the hub holds for ``table`` (for incidents, of any table); None when it holds none."""
    tables = EVENT_TABLES if table == "incidents" else (table,)
    newest = [hub.table(t)["ts"].max() for t in tables if hub.has(t) and len(hub.table(t))]
    return max(newest).tz_convert(hub.meta.timezone) if newest else None


def _score(
    hub: Hub, facts: ModelFacts, targets: pd.DatetimeIndex, values: np.ndarray, grace: pd.Timedelta
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """``(observed [H, N], actual - forecast errors, coverage)``, or None while the actuals are not complete."""
    clock = hub_clock(hub, facts.table)
    if clock is None or clock < targets[-1]:
        return None
    waited = clock >= targets[-1] + grace
    if facts.table == "incidents" and not waited:  # late incident reports: no way to tell the cells are complete
        return None
    actual = readings(hub, facts.table, facts.nodes, [facts.target], targets)[:, :, 0]  # [H, N]
    seen = np.isfinite(actual)
    coverage = float(seen.mean()) if seen.size else 0.0
    if coverage < 1.0 and not waited:
        return None
    return seen, (values.astype(np.float64) - actual)[seen], coverage


def unscorable() -> list[Path]:
    """Forecasts waiting from an agent before hubs were recorded (no ``-h<hub id>`` in the name): no hub can be
    trusted to score them, so they never are; the agent names them once at start so they can be deleted."""
    return sorted(p for p in (agent_dir() / "forecasts").glob("*/*.npz") if not _HUB_SUFFIX.search(p.name))


def score_pending(
    hub: Hub,
    hub_id: HubId,
    grace: pd.Timedelta = SCORE_GRACE,
    older: Callable[[dict[str, list[pd.Timestamp]]], Hub] | None = None,
) -> list[LiveError]:
    """Score every forecast made on ``hub`` whose actuals are complete (or ``grace`` overdue); the new records.

    Args:
        older: reads the hub at given target times (per table), for forecasts older than what ``hub`` holds
            (``hub.origin``, a cycle that read only what its models need): after a long outage their targets are
            in the hub but not in ``hub``. Called once per call, for all of them.
    """
    waiting = []
    for path in sorted((agent_dir() / "forecasts").glob(f"*/*-h{hub_id.id}.npz")):
        facts, anchor, targets, values = _load(path)
        targets = targets.tz_convert(hub.meta.timezone)
        unread = hub.origin is not None and hub.origin.first_unread(facts.table, targets) is not None
        waiting.append((path, facts, anchor, targets, values, unread))
    wanted: dict[str, list[pd.Timestamp]] = {}
    for _, facts, _, targets, _, unread in waiting:
        if unread:
            wanted.setdefault(facts.table, []).extend(targets)
    rest = older(wanted) if wanted and older is not None else None
    out, ledger = [], _ledger()  # read once: each forecast's record is its own, so none is added to it here
    for path, facts, anchor, targets, values, unread in waiting:
        on = rest if unread else hub
        if on is None:
            continue  # left waiting: never scored on readings that were not read
        result = _score(on, facts, targets, values, grace)
        if result is None:
            continue
        seen, err, coverage = result
        if not ledger.scored(facts.name, facts.version, anchor, hub_id.id):  # else recorded before a crash
            record = LiveError(
                facts.name, facts.version, facts.run_id, facts.domain, anchor.isoformat(), targets[0].isoformat(),
                targets[-1].isoformat(), int(seen.sum()), float(np.abs(err).mean()) if err.size else None,
                float(np.sqrt((err**2).mean())) if err.size else None, datetime.now(UTC).isoformat(timespec="seconds"),
                round(coverage, 6), hub_id.path, hub_id.id,
            )  # fmt: skip
            append_lines(agent_dir() / "live_error.jsonl", [json.dumps(asdict(record))])  # never after a torn line
            out.append(record)
        path.unlink()
    return out


def live_errors(model: str | None = None, since: pd.Timestamp | None = None) -> pd.DataFrame:
    """Every recorded live error (of ``model``; scored at or after ``since``), oldest first, as a table."""
    path = agent_dir() / "live_error.jsonl"
    # a torn line (a write cut short) is skipped with a warning
    rows = list(read_lines(path)) if since is None else _scored_since(path, since)
    df = pd.DataFrame(rows, columns=list(LiveError.__dataclass_fields__))
    return df if model is None else df[df["model"] == model].reset_index(drop=True)


def _scored_since(path: Path, since: pd.Timestamp) -> list[dict]:
    """The records of ``path`` scored at or after ``since``, parsing only the chunks that can hold any.

    The agent writes ``scored_at`` in UTC to the second, so a chunk's stamps compare as text: a chunk whose every
    line has one, all before ``since``, is skipped unparsed (its lines only counted, for the line numbers of
    warnings). After a year of three models that reads ~120 MB in 0.2 s instead of parsing it into a table.
    """
    if not path.is_file():
        return []
    floor = since.tz_convert("UTC").floor("s").isoformat().encode()  # "2026-12-06T04:45:43+00:00"
    rows, number, carry = [], 0, b""
    with path.open("rb") as fh:
        while data := fh.read(READ_CHUNK):
            chunk = carry + data
            end = chunk.rfind(b"\n") + 1
            whole, carry = chunk[:end], chunk[end:]
            lines = whole.splitlines()
            stamps = _SCORED_AT.findall(whole)
            if stamps and len(stamps) == len(lines) and all(t.endswith(b"+00:00") for t in stamps):
                if max(stamps) < floor:
                    number += len(lines)
                    continue
            for line in lines:
                number += 1
                r = parse_line(path, number, line) if line.strip() else None  # torn: warned, skipped
                if r is not None and not _before(r, since.value):
                    rows.append(r)
    if carry.strip():  # the last line, without its newline: a write cut short, or one still being written
        r = parse_line(path, number + 1, carry)
        if r is not None and not _before(r, since.value):
            rows.append(r)
    return rows


def _before(record: dict, cut: int) -> bool:
    scored = _ns(record.get("scored_at"))
    return scored is not None and scored < cut


def live_summary(since: pd.Timestamp) -> pd.DataFrame:
    """Live error per model, version and hub over forecasts scored since ``since``: forecasts, observed targets,
    MAE and RMSE weighted by targets, the mean coverage, and the newest target scored; newest model first."""
    df = live_errors(since=since)
    df = df[df["n"] > 0]
    cols = ["model", "version", "hub", "forecasts", "targets", "mae", "rmse", "coverage", "last_target"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    df = df.assign(
        hub=df["hub"].fillna("-"),
        se=df["mae"] * df["n"],
        sq=df["rmse"].astype(float) ** 2 * df["n"],
    )
    out = df.groupby(["model", "version", "hub"], sort=False).agg(
        forecasts=("n", "size"),
        targets=("n", "sum"),
        se=("se", "sum"),
        sq=("sq", "sum"),
        coverage=("coverage", "mean"),
        last_target=("last_target", "max"),
    )
    out["mae"], out["rmse"] = out["se"] / out["targets"], (out["sq"] / out["targets"]) ** 0.5
    return out.reset_index()[cols].sort_values(["model", "version"], ascending=[True, False]).reset_index(drop=True)


def recent_mae(model: str, version: str, since: pd.Timestamp, hub_id: str | None = None) -> float | None:
    """Live MAE of ``model`` version ``version`` over forecasts whose last target is at or after ``since``.

    Weighted by the number of observed targets; None when nothing was scored yet. With ``hub_id``, only forecasts
    made on that hub count (``since`` is that hub's time; another hub's errors say nothing of its drift).
    """
    ledger, cut = _ledger(), since.value
    # rows from before hubs were recorded have no hub id: they count only when no hub is named
    groups = [g for g in ledger.errors if g[:2] == (model, version) and hub_id in (None, g[2])]
    n = err = 0.0
    for group in groups:
        ends, counts, sums = (np.array(a, dtype=a.typecode) for a in ledger.errors[group])  # copies: appends go on
        recent = ends >= cut
        n, err = n + float(counts[recent].sum()), err + float(sums[recent].sum())
    return err / n if n > 0 else None
