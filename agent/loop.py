"""The agent loop: sense → think → act → learn, once or every ``loop.interval``.

For each served model in turn (``loop.models``): read its facts from the server, build its latest input window
from the hub, ask for a forecast, turn it into decisions and append them to the hub at once, before the next model
is asked, so an outage later in the cycle never costs decisions already made. Then learn: score forecasts whose
actuals have arrived, and check drift (which may start a retrain).

Each window is decided once: a model whose decisions for the window's anchor are already in the hub's ``decisions``
table (its ``anchor`` column) is not asked again, so a restarted agent, or ``--once --at T`` run twice, writes
nothing twice. A window that gave no decisions leaves nothing in the hub; this agent remembers it until it restarts.
A write the disk refuses (full, read-only) fails that model's turn, or that cycle, and the window is tried again.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from cityagent import durations
from cityagent.agent.act import Decided, append_decisions, decide, decided_windows
from cityagent.agent.agent_config import AgentConfig
from cityagent.agent.cycle_reach import cycle_reach, target_reach
from cityagent.agent.drift import DriftReport
from cityagent.agent.drift_watch import DriftWatch, TrackingUnreachable, spawn_retrain
from cityagent.agent.durable import why, write_advice
from cityagent.agent.grid import OffGrid, on_grid
from cityagent.agent.live_error import HubId, LiveError, hub_identity, remember, score_pending, unscorable
from cityagent.agent.lock import hub_lock
from cityagent.agent.sense import ModelFacts, WindowMissing, sense
from cityagent.agent.think import ServingClient, VersionMoved
from cityagent.errors import CityAgentError, ConfigError
from cityagent.home import home_dir
from cityagent.hub.files import newest_dates, read_manifest
from cityagent.hub.hub import Hub
from cityagent.hub.io import read_hub

log = logging.getLogger(__name__)
Status = Literal["decided", "unchanged", "skipped", "failed"]


@dataclass
class ModelOutcome:
    """What one model's turn in a cycle came to."""

    domain: str
    model: str
    status: Status
    message: str = ""
    facts: ModelFacts | None = None
    version: str = ""
    anchor: pd.Timestamp | None = None
    decisions: pd.DataFrame = field(default_factory=pd.DataFrame)
    path: Path | None = None  # the decisions part written


@dataclass
class CycleReport:
    """One cycle: each model's outcome, forecasts scored against actuals, and drift per model."""

    started: datetime
    outcomes: list[ModelOutcome] = field(default_factory=list)
    live_errors: list[LiveError] = field(default_factory=list)
    drift: dict[str, DriftReport] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def decisions(self) -> pd.DataFrame:
        frames = [o.decisions for o in self.outcomes if not o.decisions.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def write_failure(error: OSError) -> str:
    """A write the disk refused, as one line naming the file and what to do."""
    where = f" {error.filename}" if error.filename else ""
    return f"cannot write{where}: {why(error)}; {write_advice(error)}"


def parse_at(at: pd.Timestamp | str | None) -> pd.Timestamp | None:
    """The replay anchor ``--at`` as a timestamp (naive = the hub's timezone); a ConfigError if it is not one."""
    if at is None or isinstance(at, pd.Timestamp):
        return at
    try:
        anchor = pd.Timestamp(at)
    except (ValueError, TypeError, OverflowError) as e:
        raise ConfigError(f"--at {at!r} is not a time; use a hub time such as '2026-03-05 08:00'") from e
    if pd.isna(anchor):
        raise ConfigError(f"--at {at!r} is not a time; use a hub time such as '2026-03-05 08:00'")
    return anchor


def parse_interval(interval: str) -> float:
    """Seconds between cycles from ``--interval`` (or loop.interval); a ConfigError unless a positive duration."""
    try:
        seconds = durations.duration(interval, "--interval").total_seconds()
    except ValueError as e:
        raise ConfigError(f"--interval {interval!r} is not a duration; use e.g. '30s', '5min' or '1h'") from e
    if not seconds > 0:  # NaT (e.g. 'nat') is not > 0 either
        raise ConfigError(f"--interval {interval!r} is not a positive duration; use e.g. '30s', '5min' or '1h'")
    return seconds


class Agent:
    """The city agent.

    Args:
        cfg: the agent config (serving address, models, alerts, drift, retrain).
        hub: local hub directory it reads and appends decisions to (default ``cfg.hub``, else $CITYAGENT_HOME/hub).
        client: the serving client (default: from ``cfg``, reporting retries through ``say``).
        drift: the drift watch (default: starts `cityagent retrain --now TASK` when ``loop.retrain_on_drift``).
        say: where progress lines go (retries; skipped and failed turns when there is no ``after_model``).
        after_model: called after each model's turn, e.g. to print it; it then reports skips and failures itself.
    """

    def __init__(
        self,
        cfg: AgentConfig,
        hub: str | Path | None = None,
        *,
        client: ServingClient | None = None,
        drift: DriftWatch | None = None,
        say: Callable[[str], None] = log.info,
        after_model: Callable[[ModelOutcome], None] | None = None,
    ) -> None:
        self.cfg, self.say, self.after_model = cfg, say, after_model
        self.hub_dir = Path(hub or cfg.hub or home_dir() / "hub")
        self.client = client or ServingClient.from_config(cfg, report=say)
        trigger = spawn_retrain(cfg) if cfg.loop.retrain_on_drift else None
        self.drift = drift or DriftWatch(cfg, trigger)
        self._seen: dict[str, pd.Timestamp] = {}  # model → anchor of its last turn (also windows with no decisions)
        self._holding = False  # run() holds the hub's lock for all its cycles
        self._planned = False  # this cycle read of each table only what its models need (not the whole hub)
        self._unreferenced: set[str] = set()  # runs whose missing drift reference was already named

    def _already(self, name: str, anchor: pd.Timestamp, decided: dict[tuple[str, pd.Timestamp], Decided]) -> str:
        """Why ``name`` needs not decide on the window at ``anchor`` again; empty when it does."""
        done = decided.get((name, anchor.tz_convert("UTC")))
        if done is not None:  # durable: the hub says so, however often the agent restarted since
            return (
                f"already decided: its {done.rows} decision(s) ({done.versions}) for the window at "
                f"{anchor:%Y-%m-%d %H:%M} are in the hub; skipped, nothing written again"
            )
        if self._seen.get(name) == anchor:  # e.g. a window that gave no decisions, so left nothing in the hub
            return f"no new data since {anchor:%Y-%m-%d %H:%M}"
        return ""

    def _turn(
        self,
        hub: Hub,
        domain: str,
        name: str,
        at: pd.Timestamp | None,
        decided: dict[tuple[str, pd.Timestamp], Decided],
        hub_id: HubId,
        known: ModelFacts | CityAgentError,
    ) -> ModelOutcome:
        out = ModelOutcome(domain, name, "failed")
        try:
            for attempt in range(2):  # a second go when the server swapped versions between metadata and inference
                if isinstance(known, CityAgentError):  # asked before the hub was read, and it failed then
                    raise known
                out.facts = facts = known if attempt == 0 else self.client.facts(name)
                if attempt and self._planned and facts.input_offsets != known.input_offsets:
                    out.message = (  # the hub was read for the old window: the next cycle reads it for this one
                        f"{name} moved to v{facts.version}, whose input window differs from v{known.version}'s; "
                        "asked again next cycle"
                    )
                    return out
                if facts.domain != domain:
                    out.message = f"{name} is a {facts.domain} model, configured under {domain}; fix loop.models"
                    return out
                window = sense(hub, facts, at)
                out.anchor = window.anchor
                why = self._already(name, window.anchor, decided)
                if why:
                    out.status, out.message = "unchanged", why
                    return out
                try:
                    fc = self.client.forecast(window)
                    break
                except VersionMoved as e:
                    self.say(f"{e}; reading its facts again")
            else:
                out.message = f"{name} kept changing versions; try again next cycle"
                return out
            out.version = fc.version
            out.decisions = decide(fc, window, hub, self.cfg.alerts, pd.Timestamp.now(tz=hub.meta.timezone))
            # the forecast first: a crash between the two then costs nothing, as a decided window is never asked
            # again and its forecast would be lost; remember is idempotent, so a retried window keeps just one
            try:
                remember(window, fc, hub_id)  # once per (model, version, window, hub), restarts or not
                out.path = append_decisions(self.hub_dir, hub, out.decisions)  # before the next model is asked
            except OSError as e:  # a full or read-only disk (home or hub): this model fails, the next cycle retries
                out.decisions = pd.DataFrame()  # none were written
                out.message = f"{write_failure(e)}; its window is tried again next cycle"
                return out
            self._seen[name] = window.anchor
            out.status = "decided"
            out.message = f"{len(out.decisions)} decision(s) from {name} v{fc.version} at {window.anchor:%H:%M}"
            if window.note:
                out.message += f", {window.note}"
        except WindowMissing as e:
            out.status, out.message = "skipped", str(e)
        except CityAgentError as e:  # ServingUnavailable after every retry, a model the agent cannot use, ...
            out.message = str(e)
        return out

    def cycle(self, at: pd.Timestamp | str | None = None) -> CycleReport:
        """One sense → think → act → learn pass over every configured model.

        A model whose window was already decided (its decisions are in the hub, or this agent saw the same window
        last time) is ``unchanged``: not asked, nothing written. Called on its own (a notebook, the demo), the cycle
        holds the hub's lock while it runs, so it never decides windows beside a running ``cityagent agent run``.

        Args:
            at: anchor every window at this time (a replay; a step of the hub's grid, naive = the hub's timezone);
                default each model's newest data.

        Raises:
            HubBusy: another agent runs on the same hub.
        """
        if self._holding:
            return self._cycle(at)
        with hub_lock(self.hub_dir):
            return self._cycle(at)

    def _cycle(self, at: pd.Timestamp | str | None) -> CycleReport:
        report = CycleReport(datetime.now(UTC))
        anchor = parse_at(at)
        known = {name: self._facts(name) for name in self.cfg.loop.models.values()}  # what to read depends on it
        reach = self._reach(known, anchor)
        self._planned = bool(reach)
        hub = read_hub(self.hub_dir, **reach)
        if anchor is not None:  # before any model is asked: a time between steps would find no readings at all
            anchor = on_grid(hub, anchor, "--at")
        decided, hub_id = decided_windows(hub), hub_identity(self.hub_dir, hub.meta)
        for domain, name in self.cfg.loop.models.items():
            outcome = self._turn(hub, domain, name, anchor, decided, hub_id, known[name])
            report.outcomes.append(outcome)
            if self.after_model:
                self.after_model(outcome)
            elif outcome.status in ("skipped", "failed"):
                self.say(f"{name}: {outcome.status}: {outcome.message}")
        self._learn(hub, hub_id, report)
        return report

    def _facts(self, name: str) -> ModelFacts | CityAgentError:
        try:
            return self.client.facts(name)
        except CityAgentError as e:  # ServingUnavailable after every retry, a model the agent cannot use, ...
            return e

    def _reach(self, known: dict[str, ModelFacts | CityAgentError], anchor: pd.Timestamp | None) -> dict[str, Any]:
        """What this cycle reads of the hub (``read_hub``'s arguments): of each table, what its served model needs,
        no further back than loop.history, and for a replay (``--at``) the dates of its windows too; the whole hub
        with loop.history null."""
        history = self.cfg.loop.history
        if not history:
            return {}
        limit = durations.duration(history, "loop.history")
        meta = read_manifest(self.hub_dir)
        if meta is None:  # a hand-made hub without hub.json: its step and zone come from its data, read whole
            return {"recent": limit} if anchor is None else {}
        served = [f for f in known.values() if isinstance(f, ModelFacts)]
        failed = [d for d, name in self.cfg.loop.models.items() if isinstance(known[name], CityAgentError)]
        if anchor is None:
            newest = newest_dates(self.hub_dir)
            return {"recent": limit, "reach": cycle_reach(self.cfg, served, limit, meta, failed, newest=newest)}
        at = anchor.tz_localize(meta.timezone) if anchor.tzinfo is None else anchor.tz_convert(meta.timezone)
        # no `recent`: what the reach leaves out (the decisions, which may be as old as the window) is read whole
        return {"reach": cycle_reach(self.cfg, served, limit, meta, unknown=failed, at=at)}

    def _learn(self, hub: Hub, hub_id: HubId, report: CycleReport) -> None:
        grace = durations.duration(self.cfg.loop.score_grace, "loop.score_grace")
        # only forecasts made on this hub; ones older than what the cycle read (after a long outage) are scored on
        # the dates of their targets, read once for them all
        older = lambda targets: read_hub(self.hub_dir, reach=target_reach(hub.meta, targets))  # noqa: E731
        report.live_errors = score_pending(hub, hub_id, grace, older=older)
        for o in report.outcomes:
            # an unchanged window too: a restart or a second `--once` still reports drift, and a retrain held by
            # retrain.min_period starts when the period is over even while no new data arrives
            if o.status not in ("decided", "unchanged") or o.facts is None:
                continue
            try:
                drift = self.drift.check(hub, o.facts, hub_id.id)
            except TrackingUnreachable as e:  # down, not missing: checked again next cycle
                report.notes.append(f"{e}; drift not checked for {o.model}")
                continue
            except CityAgentError as e:  # a drift check must not cost the loop
                report.notes.append(f"{o.model}: drift not checked: {e}")
                continue
            if drift is None:
                if o.facts.run_id not in self._unreferenced:  # said once per run, not every cycle for weeks
                    self._unreferenced.add(o.facts.run_id)
                    report.notes.append(
                        f"{o.model}: no drift reference for run {o.facts.run_id} (trained before every run logged "
                        f"one); its drift is not checked until `cityagent retrain --now {o.domain}` replaces it"
                    )
            else:
                report.drift[o.model] = drift

    def run(
        self,
        *,
        once: bool = False,
        interval: str | None = None,
        at: str | None = None,
        stop: threading.Event | None = None,
        max_cycles: int | None = None,
        on_cycle: Callable[[CycleReport], None] | None = None,
    ) -> list[CycleReport]:
        """Cycle until ``stop`` is set (or once, or ``max_cycles`` times), ``interval`` apart (default loop.interval).

        In the long-running loop a cycle that fails as a whole (e.g. an unreadable hub) is reported and the next
        one runs; with ``once``, or for an ``at`` off the hub's grid, the error is raised.

        Returns:
            The reports of a bounded run (``once`` or ``max_cycles``); an endless run (until ``stop``) returns none
            and keeps none, so its memory stays flat for weeks: take each report in ``on_cycle``.

        Raises:
            HubBusy: another agent runs on the same hub (it would decide the same windows side by side).
        """
        period = parse_interval(interval or self.cfg.loop.interval)
        parse_at(at)  # a bad --at fails here, before the first cycle
        stop = stop or threading.Event()
        try:
            with hub_lock(self.hub_dir):
                self._holding = True
                old = unscorable()
                if old:  # said once, not every cycle: they do no harm but take space and will never be scored
                    self.say(
                        f"{len(old)} forecast(s) left by an older agent under {old[0].parent.parent} have no hub "
                        f"recorded and are never scored (e.g. {old[0].name}); delete them"
                    )
                return self._cycles(once, at, period, stop, max_cycles, on_cycle)
        finally:
            self._holding = False
            self.client.close()

    def _cycles(
        self,
        once: bool,
        at: str | None,
        period: float,
        stop: threading.Event,
        max_cycles: int | None,
        on_cycle: Callable[[CycleReport], None] | None,
    ) -> list[CycleReport]:
        # only a bounded run returns its reports: an endless one would hold every cycle's decisions for weeks
        keep = once or max_cycles is not None
        reports: list[CycleReport] = []
        cycles = 0
        while True:
            t0, cycles = time.monotonic(), cycles + 1
            try:
                report = self.cycle(at=at)
                if keep:
                    reports.append(report)
                if on_cycle:
                    on_cycle(report)
            except OffGrid:
                raise  # a replay time between steps stays between them: no cycle can succeed
            except CityAgentError as e:
                if once:
                    raise
                self.say(f"cycle failed: {e}; trying again in {period:g} s")
            except OSError as e:  # e.g. scoring's live_error.jsonl on a full disk: one line, not a traceback
                if once:
                    raise CityAgentError(write_failure(e)) from e
                self.say(f"cycle failed: {write_failure(e)}; trying again in {period:g} s")
            if once or (max_cycles is not None and cycles >= max_cycles):
                return reports
            if stop.wait(max(0.0, period - (time.monotonic() - t0))):
                return reports
