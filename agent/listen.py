"""Live sensing: subscribe to MQTT, parse JSON readings, append validated micro-batches to a Parquet hub.

Readings wait in memory until their batch is full or ``flush_seconds`` passed, then go to the hub as new part
files; malformed, unknown, off-grid, future, duplicate and late readings go to the dead-letter file with the
reason. Nothing is dropped silently: at stop, every message already received is still checked and written.

With a ``client_id`` the MQTT session is durable: the broker keeps QoS 1 readings that arrive while the listener is
down, and a message is acknowledged only once its readings are written (part file or dead letter), so the broker
sends again whatever a killed listener, or one stopped by a full or read-only disk, had not written. The hub and its
``_rejected/`` folder are checked writable before subscribing; one listener runs per hub (``<hub>/.listen.lock``).
"""

import logging
import queue
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from cityagent import durations
from cityagent.agent.deadletter import FOLDER, DeadLetter, Rejection
from cityagent.agent.durable import why, write_advice, write_problem
from cityagent.agent.livehub import LiveHub
from cityagent.agent.lock import listen_lock
from cityagent.agent.microbatch import append_batch
from cityagent.agent.mqtt import DURABLE_QOS_PROBLEM, connect, parse_url
from cityagent.agent.readings import Rejected, parse_payload, table_for_topic, to_record
from cityagent.errors import CityAgentError

log = logging.getLogger(__name__)
QUIET_S = 0.2  # no message for this long while some wait unacknowledged: the broker holds the rest back, write now
Ack = tuple[int, int]  # (mid, qos) of a received message, acknowledged once its readings are written


@dataclass
class ListenStats:
    """Counts of one listening session."""

    messages: int = 0
    readings: int = 0
    accepted: int = 0
    rejected: int = 0
    files: int = 0  # part files written: a count, as a list of them would grow for as long as the listener runs
    reasons: Counter = field(default_factory=Counter)


class _NotWritten(Exception):
    """The disk refused a write (full, read-only); what was not written stays in the batcher, counted."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _Pending:
    record: dict[str, Any]
    origin: Rejection  # the message it came in, ready to become a dead letter


class _Batcher:
    """Buffers parsed readings per table and flushes them into the hub and the dead-letter file."""

    def __init__(self, live: LiveHub, batch: int, flush_seconds: float, ahead: pd.Timedelta | None = None) -> None:
        self.live, self.batch, self.flush_seconds, self.ahead = live, batch, flush_seconds, ahead
        self.dead = DeadLetter(live.root)
        self.pending: dict[str, list[_Pending]] = defaultdict(list)
        self.rejections: list[Rejection] = []
        self.oldest: float | None = None
        self.stats = ListenStats()

    def add(self, topic: str, payload: bytes, received: datetime) -> None:
        self.stats.messages += 1
        if self.oldest is None:
            self.oldest = time.monotonic()
        try:
            table, items = table_for_topic(topic), parse_payload(payload)
        except Rejected as e:
            self.rejections.append(Rejection(topic, payload, str(e), received, kind=e.kind))
            return
        for i, obj in enumerate(items):
            self.stats.readings += 1
            where = Rejection(topic, payload, "", received, index=i if len(items) > 1 else None)
            try:
                self.pending[table].append(_Pending(to_record(table, obj, self.live.meta.timezone), where))
            except Rejected as e:
                where.reason, where.kind = str(e), e.kind
                self.rejections.append(where)

    def due(self) -> bool:
        size = sum(map(len, self.pending.values())) + len(self.rejections)
        waited = self.oldest is not None and time.monotonic() - self.oldest >= self.flush_seconds
        return size >= self.batch or (size > 0 and waited)

    def unwritten(self) -> int:
        """Readings received but in no file yet (pending ones and rejections)."""
        return sum(map(len, self.pending.values())) + len(self.rejections)

    def flush(self) -> None:
        """Write the pending readings as part files and the rejections as dead letters.

        Raises:
            _NotWritten: the disk refused a write; the rest stays unwritten (the dead-letter file is on that disk).
        """
        try:
            for table, items in list(self.pending.items()):
                result = append_batch(self.live, table, [p.record for p in items], ahead=self.ahead)
                del self.pending[table]
                for i, (kind, reason) in result.rejected.items():
                    items[i].origin.kind, items[i].origin.reason = kind, reason
                    self.rejections.append(items[i].origin)
                self.stats.accepted += result.accepted
                self.stats.files += len(result.written)
        except OSError as e:  # full or read-only: the listener stops, a durable session gets them again
            raise _NotWritten(e) from e
        except Exception as e:  # a hub that cannot take readings at all: keep them as dead letters, then stop
            for items in self.pending.values():
                for p in items:
                    p.origin.kind, p.origin.reason = "not written", f"not written: {e}"
                    self.rejections.append(p.origin)
            self.pending.clear()
            self._write_rejections()
            raise
        self._write_rejections()
        log.debug("hub %s: %d accepted, %d rejected so far", self.live.root, self.stats.accepted, self.stats.rejected)

    def _write_rejections(self) -> None:
        try:
            self.dead.write(self.rejections)
        except OSError as e:
            raise _NotWritten(e) from e
        self.stats.rejected += len(self.rejections)
        self.stats.reasons = Counter(self.dead.counts)
        self.rejections, self.oldest = [], None


def listen(
    hub: str | Path,
    url: str = "mqtt://127.0.0.1:1883",
    topics: list[str] | tuple[str, ...] = ("city/+/readings",),
    *,
    batch: int = 500,
    flush_seconds: float = 5.0,
    max_messages: int | None = None,
    duration: float | None = None,
    client_id: str | None = None,
    qos: int = 1,
    keepalive: int = 60,
    stop: threading.Event | None = None,
    clock_ahead: str | None = None,
    on_ready: Callable[[], None] | None = None,
    say: Callable[[str], None] | None = None,
    report_seconds: float = 60.0,
) -> ListenStats:
    """Listen until ``max_messages`` arrived, ``duration`` passed or ``stop`` is set, then flush and return.

    Args:
        hub: local Parquet hub directory (with hub.json) to append to.
        url: broker, ``mqtt://[user:pass@]host[:port]`` or ``mqtts://`` for TLS.
        topics: subscriptions; the topic level naming a table (``city/traffic/readings``) picks the table.
        batch: readings per micro-batch.
        flush_seconds: longest a reading waits in memory before its batch is written, seconds.
        max_messages: stop after this many messages (all received ones are still processed).
        duration: stop after this many seconds.
        client_id: MQTT client id; given, the session is durable (the broker queues readings while away).
        qos: subscription QoS; 0 or 1 with a ``client_id``.
        keepalive: MQTT keepalive, seconds.
        stop: set it from another thread (or a signal handler) to stop.
        clock_ahead: how far past the wall clock a reading may lie before it is rejected as from the future, a
            duration such as ``'10min'`` (default: one hub step).
        on_ready: called once the broker granted the subscription (its SUBACK), before the first reading is read.
        say: where a long run reports: the broker lost and back, and the running counts (default: the log).
        report_seconds: the counts are said at most this often, after a batch was written.

    Raises:
        CityAgentError: ``qos`` 2 with a ``client_id`` (a durable session can keep only QoS 1 messages across a
            crash); the hub (or its ``_rejected/`` folder) cannot be written, checked before subscribing, or a
            write fails while listening (the listener stops; with ``client_id`` the broker sends again what was
            not written); another listener holds the hub (``ListenerBusy``); the broker cannot be reached or
            refuses the subscription, at start or after a reconnect (then only once everything received is written).
    """
    if client_id is not None and qos == 2:  # checked before anything is taken from the broker
        raise CityAgentError(f"client_id {client_id!r} with qos 2: {DURABLE_QOS_PROBLEM}")
    live = LiveHub(hub)
    for folder in (live.root, live.root / FOLDER):  # before subscribing: a reading taken must be one we can keep
        problem = write_problem(folder)
        if problem is not None:
            where = f" ({folder.name}/)" if folder != live.root else ""
            fix = f"{write_advice(problem)}, then listen again"
            raise CityAgentError(f"cannot write to hub {live.root}{where}: {why(problem)}; {fix}")
    batcher = _Batcher(
        live, batch, flush_seconds, None if clock_ahead is None else durations.duration(clock_ahead, "mqtt.clock_ahead")
    )
    inbox: queue.Queue[tuple[str, bytes, datetime, Ack]] = queue.Queue()
    stop = stop or threading.Event()
    refused: list[str] = []  # the broker refused the subscription after a reconnect: nothing more will come
    say = say or log.warning
    acking = client_id is not None and qos > 0  # only a durable session's broker sends unacknowledged messages again
    held: list[Ack] = []  # QoS>0 messages in the batcher: acknowledged once their readings are in files
    failed: _NotWritten | None = None

    def take(item: tuple[str, bytes, datetime, Ack]) -> None:
        *message, ack = item
        batcher.add(*message)
        if ack[1] > 0:
            held.append(ack)

    def drain() -> None:
        while not inbox.empty():
            take(inbox.get_nowait())

    def write() -> None:
        batcher.flush()
        if acking:
            for mid, mqos in held:
                client.ack(mid, mqos)
        held.clear()

    with listen_lock(live.root):  # two listeners would append every reading twice
        client = connect(
            url,
            list(topics),
            lambda m: inbox.put((m.topic, m.payload, datetime.now(UTC), (m.mid, m.qos))),
            client_id=client_id,
            qos=qos,
            keepalive=keepalive,
            on_refused=refused.append,
            on_status=say,
            manual_ack=acking,
        )
        said = time.monotonic()
        end = time.monotonic() + duration if duration is not None else None
        try:
            if on_ready is not None:
                on_ready()
            while not stop.is_set() and not refused:
                if max_messages is not None and batcher.stats.messages >= max_messages:
                    break
                if end is not None and time.monotonic() >= end:
                    break
                try:
                    take(inbox.get(timeout=QUIET_S))
                    quiet = False
                except queue.Empty:
                    quiet = True
                # the broker sends only so many unacknowledged messages, then waits: write those once it goes quiet
                if batcher.due() or (quiet and acking and held):
                    write()
                    if time.monotonic() - said >= report_seconds:  # alive, and what it rejects, not a line a batch
                        said = time.monotonic()
                        s = batcher.stats
                        say(f"{s.accepted} reading(s) appended, {s.rejected} rejected so far ({dict(s.reasons)})")
            if acking:  # received before the stop: written and acknowledged, so the broker never sends them again
                drain()
                write()
        except _NotWritten as e:
            failed = e
        finally:
            client.disconnect()
            client.loop_stop()
            if not acking and failed is None:  # received (and acknowledged) before the disconnect: still ours to keep
                drain()
                try:
                    write()
                except _NotWritten as e:
                    failed = e
    if failed is not None:
        drain()  # counted, not written: the disk said no
        raise CityAgentError(_not_written(live.root, failed.error, batcher, durable=acking))
    if refused:
        host, port = parse_url(url)[:2]
        done = f"{batcher.stats.accepted} reading(s) appended and {batcher.stats.rejected} rejected before that"
        raise CityAgentError(f"MQTT broker {host}:{port}: {refused[0]} ({done})")
    return batcher.stats


def _not_written(root: Path, error: OSError, batcher: _Batcher, durable: bool) -> str:
    """One line on a listener stopped by a failed write: the hub, why, what was lost or comes again, what to do."""
    head = f"cannot write to hub {root}: {why(error)}; {batcher.unwritten()} received reading(s) were not written"
    done = f"({batcher.stats.accepted} appended before that)"
    if durable:
        return (
            f"{head} {done}; {write_advice(error)} and restart with the same --client-id: the broker sends them again "
            "(they were not acknowledged)"
        )
    return (
        f"{head} and are lost {done}: without --client-id the broker keeps nothing for the listener; "
        f"{write_advice(error)} and restart with a --client-id"
    )
