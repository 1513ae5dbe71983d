"""The retrain scheduler: a long-lived loop that runs ``job(task)`` at each cron time of each task.

The job (train → register challenger → gate → promote) is passed in, so scheduling knows nothing of training.
Each run holds the task's lock (``cityagent.agent.lock``): a second scheduler started by mistake skips the run
with a message naming the holder. Runs missed while a job was still running are skipped, never queued up, like
a Kubernetes CronJob with ``concurrencyPolicy: Forbid``. A failed job is logged and the loop goes on.

Inside ``handling_sigterm()`` a SIGTERM (Kubernetes stopping the pod, cron's timeout) stops the loop and interrupts
the run in flight: it is reported as failed, "interrupted by SIGTERM", never as done, and its lock is released.
"""

import json
import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from cityagent.agent.lock import TaskBusy, task_lock
from cityagent.errors import CityAgentError, ConfigError
from cityagent.home import home_dir
from cityagent.interrupts import held, interrupt

log = logging.getLogger(__name__)
Job = Callable[[str], None]
SIGTERM_EXIT = 128 + signal.SIGTERM  # 143: what a shell, cron and Kubernetes show for a process stopped by SIGTERM
_RAY_SIGTERM = re.compile(rf"\bExit code: {int(signal.SIGTERM)}\b|\bSIGTERM\b")  # Ray's words, see is_sigterm


class Interrupted(BaseException):
    """SIGTERM arrived while a run was in flight. A BaseException, like KeyboardInterrupt, so the job's
    ``except Exception`` clean-ups run but do not swallow it."""


def is_sigterm(error: BaseException) -> bool:
    """Whether ``error`` is how a SIGTERM surfaced in a job: ``Interrupted``, Lightning's ``SIGTERMException``
    (a ``SystemExit`` raised by its trainer), or the ``sys.exit(SIGTERM)`` of the handler ``ray.init`` installs,
    which a driver waiting on Ray gets back as ``SystemExit(1)`` whose ``ray_terminate_msg`` names exit code 15."""
    if isinstance(error, Interrupted) or type(error).__name__ == "SIGTERMException":
        return True
    if not isinstance(error, SystemExit):
        return False
    return error.code == signal.SIGTERM or bool(_RAY_SIGTERM.search(getattr(error, "ray_terminate_msg", None) or ""))


@dataclass(frozen=True)
class RunRecord:
    """One scheduled (or ``--now``) run: when, and whether it was done, skipped as busy, or failed
    (``interrupted``: stopped by SIGTERM before it finished)."""

    task: str
    started: datetime
    finished: datetime
    outcome: Literal["done", "busy", "failed"]
    message: str = ""
    interrupted: bool = False


def last_run(task: str) -> datetime | None:
    """When ``task`` last finished a run successfully (from ``$CITYAGENT_HOME/schedule/<task>.json``)."""
    path = home_dir() / "schedule" / f"{task}.json"
    if not path.is_file():
        return None
    return datetime.fromisoformat(json.loads(path.read_text())["finished"])


def _remember(record: RunRecord) -> None:
    folder = home_dir() / "schedule"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{record.task}.json.tmp"
    tmp.write_text(json.dumps({"started": record.started.isoformat(), "finished": record.finished.isoformat()}))
    tmp.replace(folder / f"{record.task}.json")


class Scheduler:
    """Runs ``job`` for each task at its cron times.

    Args:
        schedules: task → cron expression (``"0 3 * * *"``; a 6th field is seconds).
        job: ``job(task)`` does one retrain; it raises to report failure.
        timezone: IANA zone the cron expressions are read in.
        lock_url: PostgreSQL URL for advisory locks (see ``lock.resolve_lock_url``); None locks files.
        now: clock, for tests (default: the wall clock).
        wait: ``wait(seconds) -> stopped``; for tests (default: waits on the stop event).
    """

    def __init__(
        self,
        schedules: Mapping[str, str],
        job: Job,
        *,
        timezone: str = "UTC",
        lock_url: str | None = None,
        now: Callable[[], datetime] | None = None,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        for task, expr in schedules.items():
            if not croniter.is_valid(expr):
                raise ConfigError(f"task {task!r}: {expr!r} is not a cron expression such as '0 3 * * *'")
        try:
            self.tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ConfigError(f"scheduler timezone {timezone!r} is not an IANA zone; use e.g. 'Asia/Shanghai'") from e
        self.schedules, self.job, self.lock_url = dict(schedules), job, lock_url
        self.stop = threading.Event()
        self.sigterm = threading.Event()  # a SIGTERM came (it sets ``stop`` too)
        self._now = now or (lambda: datetime.now(UTC))
        self._wait = wait or self.stop.wait
        self._handling = self._in_flight = self._raised = False

    def now(self) -> datetime:
        return self._now().astimezone(self.tz)

    def next_time(self, task: str, after: datetime) -> datetime:
        """The first cron time of ``task`` strictly after ``after``."""
        if task not in self.schedules:
            raise ConfigError(f"no schedule for task {task!r}; scheduled tasks: {', '.join(self.schedules) or 'none'}")
        return croniter(self.schedules[task], after.astimezone(self.tz)).get_next(datetime)

    def run_now(self, task: str, *, raise_config_errors: bool = False) -> RunRecord:
        """Run ``job(task)`` once under the task's lock; busy and failed runs are reported, not raised.

        Args:
            task: the task to run.
            raise_config_errors: raise a ConfigError (an unknown task, a bad config: running again cannot help)
                instead of reporting it, for a run a user asked for on the command line.
        """
        started = self.now()
        interrupted = False
        try:
            with task_lock(task, self.lock_url):
                t0 = time.monotonic()
                self._run_job(task)
                message = f"task {task} done in {time.monotonic() - t0:.1f} s"
                outcome: Literal["done", "busy", "failed"] = "done"
        except TaskBusy as e:
            outcome, message = "busy", str(e)
        except KeyboardInterrupt:  # Ctrl-C stops the command itself
            raise
        except BaseException as e:  # a failed retrain must not stop the next one; SIGTERM stops the loop
            if is_sigterm(e):  # e.g. ray.init replaced our handler: stop the loop as ours would have
                self.stop.set()
                self.sigterm.set()
            if self.sigterm.is_set():
                interrupted, outcome = True, "failed"
                seconds = (self.now() - started).total_seconds()
                message = f"task {task} interrupted by SIGTERM after {seconds:.1f} s: the retrain did not finish"
            elif isinstance(e, ConfigError) and raise_config_errors:  # the user's to fix: one line, no traceback
                raise
            else:
                outcome, message = "failed", f"task {task} failed: {_why(e)}"
            log.debug("task %s failed", task, exc_info=True)
        record = RunRecord(task, started, self.now(), outcome, message, interrupted)
        if outcome == "done":
            _remember(record)
        # info, not warning: with no logging set up, Python prints warnings to stderr itself, and the caller
        # (the CLI's ``on_run``) already reports every record, so each line would show twice
        log.info(message)
        return record

    def _run_job(self, task: str) -> None:
        """``job(task)``, interruptible by SIGTERM while ``handling_sigterm`` is on."""
        self._in_flight, self._raised = True, False
        try:
            if self.sigterm.is_set():  # came before the run started (e.g. during the startup checks): do not start
                self._raised = True
                raise Interrupted("stopped by SIGTERM before it started")
            self.job(task)
        finally:
            self._in_flight = False
            if self._handling:  # ray.init installs its own SIGTERM handler and leaves it: take it back
                signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: object) -> None:
        """Stop the loop; interrupt the run in flight once (a second SIGTERM lets its clean-up finish)."""
        self.stop.set()
        self.sigterm.set()
        if self._in_flight and not self._raised and not held():
            self._raised = True
            interrupt(Interrupted(f"stopped by {signal.Signals(signum).name}"))  # held back during a store write

    @contextmanager
    def handling_sigterm(self) -> Iterator["Scheduler"]:
        """While inside, SIGTERM stops the loop and interrupts the run in flight (Lightning's own handler, which
        only ends the training, is chained in front of this one); the previous handler is restored on leaving.
        Outside the main thread, where Python cannot take signals, nothing changes."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        self._handling = True
        try:
            yield self
        finally:
            self._handling = False
            signal.signal(signal.SIGTERM, previous)

    def run_forever(
        self, max_runs: int | None = None, on_run: Callable[[RunRecord], None] | None = None
    ) -> list[RunRecord]:
        """Loop until ``stop`` is set (or ``max_runs`` runs happened); returns the runs.

        Args:
            max_runs: stop after this many runs (busy and failed ones count); None = until stopped.
            on_run: called after each run, e.g. to print it.
        """
        if not self.schedules:
            raise ConfigError(
                "no task has a schedule; add `retrain.schedule: {traffic: '0 3 * * *'}` to the agent config"
            )
        start = self.now()
        due = {task: self.next_time(task, start) for task in self.schedules}
        records: list[RunRecord] = []
        while not self.stop.is_set() and (max_runs is None or len(records) < max_runs):
            task, when = min(due.items(), key=lambda kv: kv[1])
            delay = (when - self.now()).total_seconds()
            if delay > 0 and self._wait(delay):
                break
            records.append(self.run_now(task))
            if on_run:
                on_run(records[-1])
            due[task] = self.next_time(task, max(self.now(), when))  # times missed during the run are skipped
        return records


def _why(error: BaseException) -> str:
    """One line on a failed job: a CityAgentError's own sentence, else the exception's type and text."""
    if isinstance(error, CityAgentError):
        return str(error)
    if isinstance(error, SystemExit):
        return f"the job exited (SystemExit {error.code})"
    return f"{type(error).__name__}: {error}"
