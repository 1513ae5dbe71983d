"""Drift watch in the loop: compare each served model's recent inputs and live error with its training reference,
and start a retrain of its task when they drifted, at most once per ``retrain.min_period``.

A model's reference is the ``drift_reference.json`` its training run logged (``cityagent.agent.retrain`` logs it),
found by the run id the served model carries, cached under ``$CITYAGENT_HOME/agent/references/``. An http(s)
tracking server is asked for ``/health`` first: MlflowClient retries a refused connection for minutes, and a cycle
must not wait that long for a check it can make next time.
"""

import json
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from cityagent.agent.agent_config import AgentConfig
from cityagent.agent.drift import REFERENCE_ARTIFACT, DriftReport, drift_report, load_reference, should_retrain
from cityagent.agent.drift_hub import hub_values, recent_start
from cityagent.agent.live_error import agent_dir, recent_mae
from cityagent.agent.schedule import last_run
from cityagent.agent.sense import ModelFacts, split_features
from cityagent.downloads import quiet_downloads
from cityagent.errors import CityAgentError, TrackingUnreachable
from cityagent.health import unreachable
from cityagent.hub.hub import Hub

log = logging.getLogger(__name__)
Trigger = Callable[[str], None]
DOWN_MEMO_S = 30.0  # a server found down is not asked again for this long (one cycle, many models)


def reference_path(run_id: str) -> Path:
    folder = agent_dir() / "references"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{run_id}.json"


def reference_for(run_id: str | None, tracking_uri: str | None = None) -> dict[str, Any] | None:
    """The drift reference of training run ``run_id``: the local copy, else the run's artifact; None if the run is
    not in the store or logged none.

    Raises:
        TrackingUnreachable: the copy is not local and the http(s) tracking server does not answer ``/health``.
        CityAgentError: the store answered but failed to list or hand over the run's artifacts.
    """
    if not run_id:
        return None
    local = reference_path(run_id)
    if not local.is_file():
        from cityagent.training.tracking import tracking_uri as default_uri

        uri = default_uri(tracking_uri)
        why = unreachable(uri)
        if why is not None:
            raise TrackingUnreachable(f"tracking server {uri} is not reachable ({why})", uri, why)
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        client = MlflowClient(tracking_uri=uri)
        try:
            names = {a.path for a in client.list_artifacts(run_id)}
        except MlflowException as e:
            if e.error_code == "RESOURCE_DOES_NOT_EXIST":  # e.g. a model trained in another team's store
                log.info("no drift reference for run %s: %s", run_id, e)
                return None
            raise _failed(uri, run_id, e) from e
        if REFERENCE_ARTIFACT not in names:  # a run trained without one (fit() outside the agent's retrain)
            log.info("no drift reference for run %s: the run has no %s", run_id, REFERENCE_ARTIFACT)
            return None
        # a server that answers but fails here (a 5xx, a refused Host, a lost artifact store) is an error to say,
        # not a run without a reference: that would stop checking the model until the agent restarts
        try:
            with tempfile.TemporaryDirectory() as tmp, quiet_downloads():
                got = Path(client.download_artifacts(run_id, REFERENCE_ARTIFACT, tmp))
                local.write_text(got.read_text())
        except (MlflowException, OSError) as e:
            raise _failed(uri, run_id, e) from e
    return load_reference(local)


def _failed(uri: str, run_id: str, e: Exception) -> CityAgentError:
    why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return CityAgentError(f"tracking server {uri} failed to give run {run_id}'s drift reference: {why}")


def spawn_retrain(cfg: AgentConfig) -> Trigger:
    """A trigger that starts ``cityagent retrain --now TASK`` as its own process, with this agent's config.

    The config is written out as it is in effect (command-line overrides such as ``--hub`` included), so the
    retrain trains on the hub the agent watches. Output goes to ``$CITYAGENT_HOME/agent/retrain/<task>.log``.
    """

    def start(task: str) -> None:
        folder = agent_dir() / "retrain"
        folder.mkdir(exist_ok=True)
        config = folder / "agent.yaml"
        config.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        cmd = [sys.executable, "-m", "cityagent.agent.cli", "retrain", "--now", task, "--config", str(config)]
        with (folder / f"{task}.log").open("a") as out:
            subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    return start


class DriftWatch:
    """Checks drift per model and triggers retrains, at most one per task per ``cfg.retrain.min_period``.

    Args:
        cfg: the agent config (drift thresholds, retrain period).
        trigger: ``trigger(task)`` starts a retrain (e.g. ``spawn_retrain()``); None only reports drift.
        now: clock, for tests.
    """

    def __init__(self, cfg: AgentConfig, trigger: Trigger | None, now: Callable[[], datetime] | None = None) -> None:
        self.cfg, self.trigger = cfg, trigger
        self._now = now or (lambda: datetime.now(UTC))
        self._file = agent_dir() / "drift_triggers.json"
        self._unknown: set[str] = set()  # runs without a reference: not looked up again every cycle
        self._down: tuple[float, TrackingUnreachable] | None = None  # (when, what) the server was last found down

    def _triggers(self) -> dict[str, str]:
        return json.loads(self._file.read_text()) if self._file.is_file() else {}

    def last_retrain(self, task: str) -> datetime | None:
        """The later of the task's last finished retrain and the last retrain drift started."""
        last = self._last(task)
        return last[0] if last else None

    def _last(self, task: str) -> tuple[datetime, str] | None:
        """``(when, what)`` of the task's latest retrain: one drift started, or one that finished."""
        found = {"finished": last_run(task), "started by drift": self._triggers().get(task)}
        times = [(datetime.fromisoformat(t) if isinstance(t, str) else t, what) for what, t in found.items() if t]
        return max(times) if times else None

    def _retrain(self, task: str, report: DriftReport) -> None:
        """Start a retrain of ``task`` for a drifted ``report``, or note in it why none starts."""
        if self.trigger is None:
            report.notes.append(f"no retrain of {task}: loop.retrain_on_drift is off (or --no-retrain)")
            return
        now, period = self._now(), self.cfg.retrain.min_period
        last = self._last(task)
        if last is not None and not should_retrain(report, last[0], period, now):
            when, what = last
            until = when + self.cfg.retrain.min_period_delta
            report.notes.append(
                f"retrain of {task} held until {until.astimezone(UTC):%Y-%m-%d %H:%M} UTC: its last retrain "
                f"({what}) was at {when.astimezone(UTC):%Y-%m-%d %H:%M} UTC and retrain.min_period is {period}"
            )
            return
        try:
            self.trigger(task)
        except (OSError, CityAgentError) as e:  # e.g. no such executable: say so, try again next cycle
            report.notes.append(f"retrain of {task} could not start: {e}")
            return
        self._file.write_text(json.dumps(self._triggers() | {task: now.isoformat()}))
        report.notes.append(f"retrain of {task} started")

    def _reference(self, run_id: str | None) -> dict[str, Any] | None:
        if run_id and not reference_path(run_id).is_file() and self._down is not None:
            if time.monotonic() - self._down[0] < DOWN_MEMO_S:
                raise self._down[1]
        try:
            return reference_for(run_id)
        except TrackingUnreachable as e:
            self._down = (time.monotonic(), e)
            raise

    def check(self, hub: Hub, facts: ModelFacts, hub_id: str | None = None) -> DriftReport | None:
        """Drift of ``facts``' model on the hub's recent window (and its live MAE, of forecasts made on the hub
        ``hub_id`` when given); None without a reference.

        Raises:
            TrackingUnreachable: the reference must come from a tracking server that is down (asked again after
                ``DOWN_MEMO_S`` seconds, so one cycle over many models waits for one health check at most).
        """
        reference = None if facts.run_id in self._unknown else self._reference(facts.run_id)
        if reference is None:
            self._unknown.add(str(facts.run_id))
            return None
        columns, _ = split_features(facts.feature_names)
        channels = [c for c in columns if c in reference["channels"]]
        since = recent_start(hub, facts.table, self.cfg.drift.window)  # hub time, so replays work too
        values, nodes = hub_values(hub, facts.table, channels, start=since)
        live = recent_mae(facts.name, facts.version, since, hub_id)
        report = drift_report(reference, values, live, self.cfg.drift, nodes=nodes)
        if report.drifted:
            self._retrain(facts.domain, report)
        return report
