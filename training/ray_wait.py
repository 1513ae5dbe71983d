"""Say when a Ray run waits for its workers' resources, which Ray Train itself does silently.

A run restarting after a lost node, or started on a cluster whose CPUs other jobs hold, waits until the worker
group's placement group fits: possibly forever, with nothing on the driver's console. The watch looks at this job's
placement groups and, once one has waited ``note_after_s``, says what it waits for and what the cluster has free;
then, once it is placed, that training goes on.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

NOTE_AFTER_S = 20.0  # a placement takes well under a second when the resources are there


def pending_groups(job_hex: str) -> dict[str, dict[str, Any]]:
    """This job's placement groups still waiting for resources (Ray's table entries, by id).

    A placement group's id ends with the id of the job that created it; Ray Train's controller actor, and so its
    worker group's placement group, belongs to the driver's job.
    """
    from ray.util import placement_group_table

    return {
        pg_id: entry
        for pg_id, entry in placement_group_table().items()
        if pg_id.endswith(job_hex) and entry.get("state") == "PENDING"
    }


def _need(entry: dict[str, Any]) -> str:
    bundles = list(entry.get("bundles", {}).values())
    if not bundles:
        return "its workers"
    shown = ", ".join(f"{v:g} {k}" for k, v in bundles[0].items())
    return f"{len(bundles)} worker(s) × {{{shown}}}"


def _why(entry: dict[str, Any]) -> str:
    """What the cluster has against what the worker group needs, and so what the wait depends on."""
    import ray

    have, total = ray.available_resources(), ray.cluster_resources()
    need = sum(b.get("CPU", 0) for b in entry.get("bundles", {}).values())
    alive = sum(1 for n in ray.nodes() if n.get("Alive"))
    state = f"{have.get('CPU', 0):g} of {total.get('CPU', 0):g} CPUs free on {alive} live node(s)"
    if need > total.get("CPU", 0):
        return (
            f"the cluster has {state}, fewer in all than the {need:g} it needs: a node was lost, and the run goes on "
            "when one joins (or stop it and train with fewer workers)"
        )
    return f"the cluster has {state}: other jobs hold them, and the run goes on when they release them"


class PlacementWatch(threading.Thread):
    """Looks every ``every_s`` seconds while a Ray run trains; ``say`` gets one line when a wait begins to be long
    and one when it ends (a log warning by default)."""

    def __init__(
        self, job_hex: str, say: Callable[[str], None] | None = None, every_s: float = 2.0, note_after_s: float = 0.0
    ) -> None:
        super().__init__(daemon=True, name="ray-placement-watch")
        self.job_hex, self.every_s = job_hex, every_s
        self.note_after_s = note_after_s or NOTE_AFTER_S
        self.say = say or log.warning
        self.done = threading.Event()
        self.first_seen: dict[str, float] = {}
        self.noted: set[str] = set()

    def look(self) -> None:
        pending = pending_groups(self.job_hex)
        now = time.monotonic()
        for pg_id, entry in pending.items():
            since = self.first_seen.setdefault(pg_id, now)
            if pg_id not in self.noted and now - since >= self.note_after_s:
                self.noted.add(pg_id)
                waited = f"the Ray run has waited {now - since:.0f} s for {_need(entry)} to (re)start its workers"
                self.say(f"{waited}; {_why(entry)}")
        for pg_id in [p for p in self.first_seen if p not in pending]:
            waited = now - self.first_seen.pop(pg_id)
            if pg_id in self.noted:
                self.noted.discard(pg_id)
                self.say(f"the Ray run's workers are placed after {waited:.0f} s of waiting; training goes on")

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            try:
                self.look()
            except Exception as e:  # the watch only informs: a cluster that stops answering is the run's to report
                log.debug("placement watch: %s", e)

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=10)
