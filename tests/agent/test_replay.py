"""Dead letters get another try: `hub replay` appends the readings a fixed cause had kept out, exactly once, and
`hub rejected` says why the rest are out. The dead letters are written by the listener's own batcher (and once by a
real listener over the Mosquitto broker)."""

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cityagent.agent import replay as replay_module
from cityagent.agent.cli import app
from cityagent.agent.compact import compact_hub
from cityagent.agent.deadletter import ARCHIVE, FOLDER, read_rejections, summarize
from cityagent.agent.listen import _Batcher, listen
from cityagent.agent.livehub import LiveHub
from cityagent.agent.lock import listen_lock
from cityagent.agent.replay import JOURNAL, replay
from cityagent.errors import CityAgentError
from cityagent.hub import read_hub, write_hub
from cityagent.hub.validate import validate_hub
from tests.agent.test_listen import needs_broker, publish, session, traffic  # noqa: F401
from tests.factories import tiny_hub

RECEIVED = datetime(2026, 3, 1, 20, 30, tzinfo=UTC)  # 04:30 in the hub's zone: just after its last readings
TOPIC = "city/traffic/readings"


@pytest.fixture
def hub_dir(tmp_path) -> Path:
    path = tmp_path / "hub"
    write_hub(tiny_hub(), path)  # sensors s0..s2, readings to 2026-03-02 03:45 (+08:00)
    return path


def set_aside(root: Path, messages: list[tuple[str, object]], received: datetime = RECEIVED) -> None:
    """Hand ``messages`` to the listener's batcher and write what it makes of them."""
    batcher = _Batcher(LiveHub(root), 500, 5.0)
    for topic, body in messages:
        batcher.add(topic, body if isinstance(body, bytes) else json.dumps(body).encode(), received)
    batcher.flush()


def add_sensor(root: Path, sensor: str) -> None:
    sensors = pd.read_parquet(root / "sensors.parquet")
    extra = pd.DataFrame({"sensor_id": [sensor], "lat": [22.53], "lon": [114.05]})
    pd.concat([sensors, extra], ignore_index=True).to_parquet(root / "sensors.parquet", index=False)


def rows_of(root: Path, sensor: str) -> pd.DataFrame:
    df = read_hub(root).tables["traffic"]
    return df[df["sensor_id"] == sensor].reset_index(drop=True)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def archived(root: Path) -> list[dict]:
    return [json.loads(line) for p in (root / FOLDER / ARCHIVE).glob("*.jsonl") for line in p.read_text().splitlines()]


S9 = [traffic("s9", "2026-03-02T04:00:00+08:00", 31.0), traffic("s9", "2026-03-02T04:15:00+08:00", 32.0)]


def test_readings_of_a_sensor_added_since_enter_the_hub_once(hub_dir):
    set_aside(hub_dir, [(TOPIC, S9), (TOPIC, b"not json")])
    assert sorted(r["kind"] for r in read_rejections(hub_dir)) == ["malformed", "unknown id", "unknown id"]

    assert replay(hub_dir).accepted == {}  # the cause is not fixed yet: nothing changes
    add_sensor(hub_dir, "s9")
    report = replay(hub_dir)

    assert report.accepted == {"traffic": 2} and report.still == {"malformed": 1} and report.changed == 0
    got = rows_of(hub_dir, "s9")
    assert got["speed"].tolist() == [31.0, 32.0]
    assert got["ts"].tolist() == [
        pd.Timestamp("2026-03-02 04:00", tz="Asia/Shanghai") + pd.Timedelta(minutes=m) for m in (0, 15)
    ]
    assert validate_hub(read_hub(hub_dir)).ok
    assert [r["kind"] for r in read_rejections(hub_dir)] == ["malformed"]  # the rest stay, unchanged
    kept = archived(hub_dir)
    assert [(a["index"], a["kind"]) for a in kept] == [(0, "unknown id"), (1, "unknown id")]
    assert {a["part"] for a in kept} == set(report.parts) and len(report.parts) == 1
    assert (hub_dir / report.parts[0]).is_file() and not (hub_dir / FOLDER / JOURNAL).exists()

    again = replay(hub_dir)  # a second replay finds nothing new to take
    assert again.accepted == {} and again.letters == 1 and len(rows_of(hub_dir, "s9")) == 2


def test_a_dry_run_decides_and_writes_nothing(hub_dir):
    set_aside(hub_dir, [(TOPIC, S9)])
    add_sensor(hub_dir, "s9")
    before = files(hub_dir)
    report = replay(hub_dir, dry_run=True)
    assert report.accepted == {"traffic": 2} and len(report.parts) == 1 and report.dry_run
    assert files(hub_dir) == before


def test_a_reading_from_the_future_when_received_stays_out_however_late_the_replay(hub_dir):
    # 05:00 local, received at 04:30: half an hour ahead of the sensor's wall clock, more than one 15-min step
    set_aside(hub_dir, [(TOPIC, traffic("s9", "2026-03-02T05:00:00+08:00"))])
    add_sensor(hub_dir, "s9")

    report = replay(hub_dir)
    assert report.accepted == {} and report.still == {"future": 1} and report.changed == 1
    [letter] = read_rejections(hub_dir)
    assert letter["kind"] == "future" and "lay in the future when it was received" in letter["reason"]
    assert letter["was"]["kind"] == "unknown id"  # the first reason is kept

    assert replay(hub_dir).changed == 0  # judged the same way again: the file is not touched
    assert replay(hub_dir, clock_ahead="1h").accepted == {"traffic": 1}  # the listener's mqtt.clock_ahead allows it
    assert read_rejections(hub_dir) == []
    assert not list((hub_dir / FOLDER).glob("*.jsonl"))  # an emptied dead-letter file goes


def test_a_whole_message_set_aside_is_judged_reading_by_reading(hub_dir):
    # a letter without an index holds its whole message (the listener writes those for messages that fail as a
    # whole; an operator may write one by hand): each reading in it is judged on its own
    body = [traffic("s9", "2026-03-02T04:00:00+08:00"), traffic("s0", "2026-03-02T03:45:00+08:00")]
    letter = {
        "received": RECEIVED.isoformat(),
        "topic": TOPIC,
        "index": None,
        "kind": "not written",
        "reason": "not written: disk full",
        "payload": json.dumps(body),
        "encoding": "utf-8",
    }
    (hub_dir / FOLDER).mkdir()
    (hub_dir / FOLDER / "2026-03-01.jsonl").write_text(json.dumps(letter) + "\n")
    add_sensor(hub_dir, "s9")

    report = replay(hub_dir)
    assert report.accepted == {"traffic": 1} and report.still == {"duplicate": 1}
    [left] = read_rejections(hub_dir)  # the s0 reading is in the hub already: it stays out, as its own letter
    assert left["index"] == 1 and left["kind"] == "duplicate" and left["was"]["kind"] == "not written"
    assert [a["index"] for a in archived(hub_dir)] == [0]
    assert len(rows_of(hub_dir, "s9")) == 1


def test_other_kinds_and_torn_lines_are_left_exactly_as_they_were(hub_dir):
    set_aside(hub_dir, [(TOPIC, S9), (TOPIC, b"not json"), (TOPIC, traffic("s1", "2026-03-02T04:07:00+08:00"))])
    [path] = (hub_dir / FOLDER).glob("*.jsonl")
    with open(path, "ab") as fh:
        fh.write(b'{"received": "2026-03-01T20:30:00+00:00", "topic": "city/traf')  # a write a full disk cut short
    add_sensor(hub_dir, "s9")
    others = [line for line in path.read_bytes().split(b"\n") if b"unknown id" not in line]

    report = replay(hub_dir, kinds=["unknown id"])
    assert report.accepted == {"traffic": 2} and report.skipped == 2 and report.unreadable == 1
    assert path.read_bytes().split(b"\n")[:-1] == others  # byte for byte, the torn line included


def test_since_takes_only_the_days_received_from_then_on(hub_dir):
    set_aside(hub_dir, [(TOPIC, S9[0])], received=RECEIVED - pd.Timedelta(days=1))
    set_aside(hub_dir, [(TOPIC, S9[1])])
    add_sensor(hub_dir, "s9")
    report = replay(hub_dir, since=RECEIVED.date())
    assert report.letters == 1 and report.accepted == {"traffic": 1}
    assert rows_of(hub_dir, "s9")["speed"].tolist() == [32.0]
    [left] = read_rejections(hub_dir)  # the older day's file is not read at all
    assert left["received"].startswith(str((RECEIVED - pd.Timedelta(days=1)).date()))


def test_a_reading_set_aside_on_two_days_enters_once_and_a_dry_run_says_so(hub_dir):
    set_aside(hub_dir, [(TOPIC, S9[0])])
    set_aside(hub_dir, [(TOPIC, S9)], received=RECEIVED + pd.Timedelta(days=1))  # sent again the next day, and more
    add_sensor(hub_dir, "s9")
    dry = replay(hub_dir, dry_run=True)  # day by day: the second day's copy is judged after the first day's
    assert dry.accepted == {"traffic": 2} and dry.still == {"duplicate": 1}
    report = replay(hub_dir)
    assert (report.accepted, report.still, len(report.parts)) == (dry.accepted, dry.still, 2)
    assert rows_of(hub_dir, "s9")["speed"].tolist() == [31.0, 32.0]
    [left] = read_rejections(hub_dir)
    assert left["kind"] == "duplicate" and left["was"]["kind"] == "unknown id"


def test_a_replay_cut_short_after_the_parts_is_finished_by_the_next_one(hub_dir, monkeypatch):
    set_aside(hub_dir, [(TOPIC, S9)])
    add_sensor(hub_dir, "s9")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed after the parts were written")

    monkeypatch.setattr(replay_module, "_apply", crash)
    with pytest.raises(KeyboardInterrupt):
        replay(hub_dir)
    monkeypatch.undo()
    assert len(rows_of(hub_dir, "s9")) == 2 and (hub_dir / FOLDER / JOURNAL).exists()
    assert len(read_rejections(hub_dir)) == 2  # in the hub and still dead letters: the journal says which
    compact_hub(hub_dir, ["traffic"], 2)  # a listener compacts the folder before anyone replays again
    assert not any(re.fullmatch(r"part-[0-9a-f-]{36}\.parquet", p.name) for p in (hub_dir / "traffic").rglob("*"))

    report = replay(hub_dir)
    assert report.finished == 2 and report.accepted == {}
    assert len(rows_of(hub_dir, "s9")) == 2 and read_rejections(hub_dir) == [] and len(archived(hub_dir)) == 2
    assert not (hub_dir / FOLDER / JOURNAL).exists()


def test_a_damaged_compacted_part_stops_the_finish_instead_of_appending_again(hub_dir, monkeypatch):
    set_aside(hub_dir, [(TOPIC, S9)])
    add_sensor(hub_dir, "s9")
    monkeypatch.setattr(replay_module, "_apply", lambda *args, **kwargs: None)  # killed after the parts
    replay(hub_dir)
    monkeypatch.undo()
    compact_hub(hub_dir, ["traffic"], 2)
    [compacted] = [p for p in (hub_dir / "traffic").rglob("*.parquet") if "+" in p.name]
    compacted.write_bytes(b"PAR1 torn by a disk that filled up")
    before = files(hub_dir)

    with pytest.raises(CityAgentError, match=re.escape(compacted.name) + ".*move it out of the hub"):
        replay(hub_dir)
    assert files(hub_dir) == before  # no second copy of the readings, the letters and the journal kept
    gone = f"{compacted.parent.relative_to(hub_dir)}/part-{uuid.uuid4()}.parquet"  # damaged once the hub was read
    with pytest.raises(CityAgentError, match=r"cannot tell whether .* reached the hub.*replay again"):
        replay_module._in_hub(hub_dir, gone)


def test_a_replay_cut_short_while_rewriting_archives_each_letter_once(hub_dir, monkeypatch):
    set_aside(hub_dir, [(TOPIC, S9), (TOPIC, b"not json")])  # the file keeps a line: it is rewritten, not removed
    add_sensor(hub_dir, "s9")
    real = replay_module._write_synced

    def crash_on_dead_letters(path, text):
        if path.suffix == ".jsonl":
            raise KeyboardInterrupt("killed after the archive's append, before the file's rename")
        real(path, text)

    monkeypatch.setattr(replay_module, "_write_synced", crash_on_dead_letters)
    with pytest.raises(KeyboardInterrupt):
        replay(hub_dir)
    monkeypatch.undo()
    assert len(archived(hub_dir)) == 2 and len(read_rejections(hub_dir)) == 3

    assert replay(hub_dir).finished == 2
    assert len(archived(hub_dir)) == 2 and len(rows_of(hub_dir, "s9")) == 2
    assert [r["kind"] for r in read_rejections(hub_dir)] == ["malformed"]


def test_a_replay_cut_short_before_its_parts_leaves_the_letters_for_the_next(hub_dir, monkeypatch):
    set_aside(hub_dir, [(TOPIC, S9)])
    add_sensor(hub_dir, "s9")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed before the first part")

    monkeypatch.setattr(replay_module, "write_checked", crash)
    with pytest.raises(KeyboardInterrupt):
        replay(hub_dir)
    monkeypatch.undo()
    assert (hub_dir / FOLDER / JOURNAL).exists() and rows_of(hub_dir, "s9").empty

    report = replay(hub_dir)
    assert report.finished == 0 and report.accepted == {"traffic": 2} and read_rejections(hub_dir) == []
    assert len(rows_of(hub_dir, "s9")) == 2


def test_an_unreadable_journal_is_refused_naming_its_parts(hub_dir):
    set_aside(hub_dir, [(TOPIC, S9)])
    part = f"traffic/date=2026-03-02/part-{uuid.uuid4()}.parquet"
    (hub_dir / FOLDER / JOURNAL).write_text('{"letters": [{"file": "x", "parts": {"null": "' + part + '"}')
    with pytest.raises(CityAgentError, match=re.escape(part)):
        replay(hub_dir)
    assert replay(hub_dir, dry_run=True).interrupted  # a dry run only says so


def test_a_running_listener_keeps_the_replay_out(hub_dir):
    set_aside(hub_dir, [(TOPIC, S9)])
    with listen_lock(hub_dir):
        with pytest.raises(CityAgentError, match=r"a listener appends to it .*stop it"):
            replay(hub_dir)
        assert replay(hub_dir, dry_run=True).still == {"unknown id": 2}  # a dry run only reads: it may look


def cli(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def test_the_cli_shows_why_readings_are_out_and_replays_them(hub_dir):
    set_aside(hub_dir, [(TOPIC, S9), (TOPIC, b"not json")])
    shown = cli("hub", "rejected", hub_dir)
    assert shown.exit_code == 0, shown.output
    assert re.search(r"unknown id\s*│\s*2\s*│", shown.output) and re.search(r"malformed\s*│\s*1\s*│", shown.output)
    assert "3 dead letter(s)" in shown.output and "cityagent hub replay" in shown.output

    add_sensor(hub_dir, "s9")
    dry = cli("hub", "replay", hub_dir, "--dry-run")
    assert dry.exit_code == 0 and "2 reading(s) would be appended (traffic 2)" in dry.output, dry.output
    done = cli("hub", "replay", hub_dir)
    assert done.exit_code == 0 and "2 reading(s) appended (traffic 2) in 1 part file(s)" in done.output, done.output
    assert "1 still set aside ({'malformed': 1})" in done.output

    after = cli("hub", "rejected", hub_dir, "--kind", "unknown id", "--since", RECEIVED.date())
    assert after.exit_code == 0 and f"no dead letters of kind unknown id since {RECEIVED.date()}" in after.output
    assert "(2 replayed earlier)" in after.output


def test_the_summary_counts_every_letter_but_holds_only_the_newest(hub_dir):
    set_aside(hub_dir, [(TOPIC, S9), (TOPIC, b"not json")])
    set_aside(hub_dir, [(TOPIC, traffic("s8", "2026-03-02T04:00:00+08:00"))], received=RECEIVED + pd.Timedelta(days=1))
    found = summarize(hub_dir, last=2)
    assert {k: s.count for k, s in found.kinds.items()} == {"unknown id": 3, "malformed": 1} and found.total == 4
    assert found.kinds["unknown id"].first.startswith(str(RECEIVED.date()))
    assert found.kinds["unknown id"].last.startswith(str((RECEIVED + pd.Timedelta(days=1)).date()))
    assert "'s8'" in found.kinds["unknown id"].reason  # the newest one's
    assert len(found.newest) == 2 and "'s8'" in found.newest[0]["reason"] and "payload" not in found.newest[0]
    later = summarize(hub_dir, kinds={"unknown id"}, since=str((RECEIVED + pd.Timedelta(days=1)).date()))
    assert later.total == 1
    add_sensor(hub_dir, "s9")
    replay(hub_dir)
    assert summarize(hub_dir).replayed == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "unknown-id"], "--kind 'unknown-id' is no dead-letter kind; use one of: malformed"),
        (["--kind", "late", "--kind", "stale"], "--kind 'stale' is no dead-letter kind"),
        (["--since", "yesterday"], "--since 'yesterday' is not a day; give the UTC day of receipt as YYYY-MM-DD"),
    ],
)
def test_a_bad_filter_is_refused_naming_the_flag(hub_dir, args, message):
    for command in ("rejected", "replay"):
        result = cli("hub", command, hub_dir, *args)
        assert result.exit_code != 0 and message in str(result.exception)


def test_a_folder_that_is_no_hub_is_refused(tmp_path):
    result = cli("hub", "replay", tmp_path)
    assert result.exit_code != 0 and "is not a local hub directory" in str(result.exception)


@needs_broker
def test_readings_a_real_listener_set_aside_are_replayed(hub_dir, session):  # noqa: F811
    prefix, cid = session
    topics = [f"{prefix}/+/readings"]
    listen(hub_dir, topics=topics, client_id=cid, duration=0.1)  # the durable session keeps what follows
    publish([(f"{prefix}/traffic/readings", [{**r, "sensor_id": "s7"} for r in S9])])
    stats = listen(hub_dir, topics=topics, client_id=cid, max_messages=1, duration=15, flush_seconds=0.1)
    assert stats.reasons == {"unknown id": 2}
    add_sensor(hub_dir, "s7")
    result = cli("hub", "replay", hub_dir)
    assert result.exit_code == 0 and "2 reading(s) appended" in result.output, result.output
    assert rows_of(hub_dir, "s7")["speed"].tolist() == [31.0, 32.0] and validate_hub(read_hub(hub_dir)).ok
