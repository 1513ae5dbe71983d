"""`hub listen` when the hub cannot be written, and with a second listener: a hub it cannot write is refused before
subscribing, a write failure stops it in one line, a durable session gets again every reading not written (it was
never acknowledged), and a second listener on one hub is refused naming the first."""

import json
import os
import socket
import threading
from datetime import UTC, datetime

import pytest

from cityagent.agent.deadletter import DeadLetter, Rejection, read_rejections
from cityagent.agent.listen import listen
from cityagent.errors import CityAgentError
from cityagent.hub import read_hub
from cityagent.hub.validate import validate_hub
from tests.agent.disk_faults import disk_fault
from tests.agent.test_listen import hub_dir, needs_broker, publish, session, traffic  # noqa: F401

STEPS = [f"2026-03-02T{4 + k // 4:02d}:{15 * (k % 4):02d}:00+08:00" for k in range(8)]  # after tiny_hub's last


def _messages(prefix: str) -> list[tuple[str, list[dict]]]:
    """One message per step, each with the step's three readings (in time order)."""
    return [(f"{prefix}/traffic/readings", [traffic(s, ts) for s in ("s0", "s1", "s2")]) for ts in STEPS]


UNWRITABLE = [
    ("readonly", "Read-only file system", "make it writable"),
    ("full", "No space left on device", "free space on its disk"),
]


@pytest.mark.parametrize(("kind", "why", "advice"), UNWRITABLE)
def test_a_hub_that_cannot_be_written_is_refused_before_subscribing(hub_dir, kind, why, advice):  # noqa: F811
    with socket.socket() as s:  # a port nobody listens on: the refusal must come before any connection
        s.bind(("127.0.0.1", 0))
        url = f"mqtt://127.0.0.1:{s.getsockname()[1]}"
    with disk_fault(hub_dir, kind), pytest.raises(CityAgentError) as e:
        listen(hub_dir, url=url, client_id="never-connects", duration=0.5)
    assert str(e.value) == f"cannot write to hub {hub_dir}: {why}; {advice}, then listen again"


@needs_broker
def test_a_full_disk_stops_the_listener_in_one_line_and_the_broker_sends_the_rest_again(hub_dir, session):  # noqa: F811
    prefix, cid = session
    topics = [f"{prefix}/+/readings"]
    listen(hub_dir, topics=topics, client_id=cid, duration=0.1)  # opens the durable session
    messages = _messages(prefix)
    publish(messages[:2])
    with disk_fault(hub_dir, "full", on=False) as disk:
        # the first batch is written; then the disk fills up under the listener
        first = listen(hub_dir, topics=topics, client_id=cid, max_messages=2, duration=15, batch=6)
        publish(messages[2:])
        with pytest.raises(CityAgentError) as e:
            listen(
                hub_dir, topics=topics, client_id=cid, duration=15, batch=3, on_ready=lambda: setattr(disk, "on", True)
            )
    said = str(e.value)
    assert said.startswith(f"cannot write to hub {hub_dir}: No space left on device; ") and "\n" not in said
    assert "received reading(s) were not written" in said
    assert "free space on its disk and restart with the same --client-id: the broker sends them again" in said
    assert first.accepted == 6 and len(read_hub(hub_dir).tables["traffic"]) == 3 * 24 + 6

    # space is back: the broker sends again every message whose readings were not written (never acknowledged)
    rest = listen(hub_dir, topics=topics, client_id=cid, max_messages=len(messages) - 2, duration=15)
    assert (rest.accepted, rest.rejected) == (3 * (len(messages) - 2), 0)
    hub = read_hub(hub_dir)
    assert len(hub.tables["traffic"]) == 3 * 24 + 3 * len(messages) and validate_hub(hub).ok


@needs_broker
def test_a_listener_acknowledges_what_it_wrote_and_is_not_stalled_by_the_brokers_window(hub_dir, session):  # noqa: F811
    prefix, cid = session
    topics = [f"{prefix}/+/readings"]
    listen(hub_dir, topics=topics, client_id=cid, duration=0.1)
    messages = [(f"{prefix}/traffic/readings", traffic(s, ts)) for ts in STEPS for s in ("s0", "s1", "s2")]
    publish(messages)
    # Mosquitto sends 20 messages unacknowledged, then waits: a batch of 1000 that only waited for its
    # --flush-seconds (600) would get 20 readings in the 15 s; written once the broker goes quiet, it gets them all
    first = listen(hub_dir, topics=topics, client_id=cid, max_messages=len(messages), duration=15, batch=1000,
                   flush_seconds=600)  # fmt: skip
    again = listen(hub_dir, topics=topics, client_id=cid, duration=1.5)
    assert first.accepted == len(messages) == 24 and again.messages == 0  # acknowledged: never sent again


@needs_broker
def test_a_second_listener_on_one_hub_is_refused_naming_the_first(hub_dir, session):  # noqa: F811
    prefix, _ = session
    topics = [f"{prefix}/+/readings"]
    stop, ready, done = threading.Event(), threading.Event(), []
    first = threading.Thread(target=lambda: done.append(listen(hub_dir, topics=topics, stop=stop, on_ready=ready.set)))
    first.start()
    try:
        assert ready.wait(15), "the first listener never subscribed"
        with pytest.raises(CityAgentError) as e:
            listen(hub_dir, topics=topics, duration=1)
        said = str(e.value)
        assert said.startswith(f"a listener already appends to hub {hub_dir.resolve()}: pid {os.getpid()} on ")
        assert "stop it first, or give this one another --hub" in said
    finally:
        stop.set()
        first.join(15)
    assert len(done) == 1
    assert listen(hub_dir, topics=topics, duration=0.5).messages == 0  # the lock went with the first listener
    assert validate_hub(read_hub(hub_dir)).ok  # the lock file is no table


def test_dead_letters_start_on_a_fresh_line_after_a_torn_one(hub_dir, caplog):  # noqa: F811
    folder = hub_dir / "_rejected"
    folder.mkdir()
    torn = folder / "2026-03-02.jsonl"
    torn.write_text('{"received": "2026-03-02T00:00:00+00:00", "topic": "ci')  # a write a full disk cut short
    received = datetime(2026, 3, 2, 1, tzinfo=UTC)
    DeadLetter(hub_dir).write([Rejection("city/traffic/readings", b"{not json", "payload is not JSON", received)])
    [row] = read_rejections(hub_dir)
    assert row["payload"] == "{not json" and torn.read_text().splitlines()[1] == json.dumps(row, ensure_ascii=False)
    assert [r.getMessage() for r in caplog.records if "not JSON" in r.getMessage()] == [
        f"{torn} line 1 is not JSON (a write cut short?); skipped it: remove that line"
    ]
