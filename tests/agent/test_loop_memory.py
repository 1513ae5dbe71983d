"""A loop meant to run for weeks holds nothing per cycle: each cycle's report goes to ``on_cycle`` and is let go.

Found by `python benchmarks/soak.py` (BENCHMARKS.md, "Long-running memory"): the endless loop kept every report,
with its decisions, facts and drift, for the life of the process (~150 KiB a cycle on the synthetic city).
"""

import gc
import threading
import weakref

from cityagent.agent.loop import Agent, CycleReport
from tests.agent.test_loop import config, hub_dir, models, peak, start_server, template  # noqa: F401


def test_an_endless_loop_lets_go_of_the_reports_of_cycles_past(hub_dir, start_server, peak):  # noqa: F811
    agent = Agent(config(hub_dir, start_server().address))
    stop = threading.Event()
    past: list[weakref.ref[CycleReport]] = []
    alive: list[int] = []

    def on_cycle(report: CycleReport) -> None:
        gc.collect()
        alive.append(sum(ref() is not None for ref in past))  # earlier reports something still holds
        past.append(weakref.ref(report))
        if len(past) == 4:
            stop.set()

    kept = agent.run(at=str(peak.tz_localize(None)), interval="1ms", stop=stop, on_cycle=on_cycle)
    assert len(past) == 4 and alive == [0, 0, 0, 0]
    assert kept == []  # an endless run returns nothing: it would have had to keep it all


def test_bounded_runs_still_return_their_reports(hub_dir, start_server, peak):  # noqa: F811
    agent = Agent(config(hub_dir, start_server().address))
    reports = agent.run(at=str(peak.tz_localize(None)), interval="1ms", max_cycles=2)
    assert len(reports) == 2 and [o.status for o in reports[0].outcomes] == ["decided"] * 3
