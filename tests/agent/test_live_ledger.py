"""The agent keeps what live_error.jsonl says as it needs it, reading only what was appended since: the drift's
live MAE equals the whole file's, in any chunking, and an anchor is scored once across restarts."""

import json
import random
from dataclasses import asdict

import pandas as pd
import pytest

from cityagent.agent import durable, live_error
from cityagent.agent.live_error import LiveError, agent_dir, live_errors, recent_mae, was_scored

T0 = pd.Timestamp("2026-03-02 00:00", tz="Asia/Shanghai")


def record(rng: random.Random, i: int) -> dict:
    anchor = T0 + pd.Timedelta(minutes=5 * i)
    n = rng.choice([0, 12, 96])
    mae = None if n == 0 else rng.uniform(0, 10)
    fields = (
        rng.choice(["traffic-a", "demand-a"]), rng.choice(["1", "2"]), "r", "traffic", anchor.isoformat(),
        (anchor + pd.Timedelta(minutes=5)).isoformat(), (anchor + pd.Timedelta(hours=1)).isoformat(), n, mae, mae,
        anchor.isoformat(), 1.0, "/hub", rng.choice(["aaaa", "bbbb", None]),
    )  # fmt: skip
    return asdict(LiveError(*fields))


def whole_file_mae(model: str, version: str, since: pd.Timestamp, hub_id: str | None) -> float | None:
    """The live MAE as the agent computed it before the ledger: the whole file, as a table."""
    df = live_errors(model)
    if hub_id is not None:
        df = df[df["hub_id"] == hub_id]
    df = df[(df["version"] == version) & (df["n"] > 0)]
    df = df[pd.to_datetime(df["last_target"], utc=True) >= since.tz_convert("UTC")]
    return None if df.empty else float((df["mae"] * df["n"]).sum() / df["n"].sum())


def scored(minutes: int) -> str:
    """When the agent scored a record ``minutes`` after T0, as it writes it: UTC, to the second."""
    return (T0 + pd.Timedelta(minutes=minutes)).tz_convert("UTC").isoformat()


def same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Equal rows; a column of strings and None may be typed otherwise when the table holds fewer rows."""
    plain = [df.astype(object).where(df.notna(), None) for df in (got, want)]
    pd.testing.assert_frame_equal(*plain)


def append(rows: list[dict], tail: str = "") -> None:
    with (agent_dir() / "live_error.jsonl").open("a") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows) + tail)


@pytest.mark.parametrize("chunk", [64, 1000, 1 << 22])
def test_the_live_mae_equals_the_whole_files_as_records_arrive(chunk, monkeypatch):
    monkeypatch.setattr(live_error, "READ_CHUNK", chunk)
    live_error._ledgers.clear()
    rng, rows = random.Random(chunk), []
    for batch in range(4):  # the agent asks between appends, as cycles do
        new = [record(rng, len(rows) + i) for i in range(50)]
        rows += new
        append(new)
        for since in (T0, T0 + pd.Timedelta(hours=8 * batch + 3)):
            for model, version, hub in [("traffic-a", "1", "aaaa"), ("demand-a", "2", None), ("demand-a", "1", "x")]:
                want = whole_file_mae(model, version, since, hub)
                got = recent_mae(model, version, since, hub)
                assert got == pytest.approx(want, rel=1e-12) if want is not None else got is None
    assert live_error._ledgers[agent_dir() / "live_error.jsonl"].lines == len(rows)


def test_an_anchor_is_scored_once_and_a_line_being_written_waits_for_its_end():
    live_error._ledgers.clear()
    rng = random.Random(1)
    first, second = record(rng, 0), record(rng, 1)
    anchor = pd.Timestamp(first["anchor"])
    whole = json.dumps(second)
    half = whole[: len(whole) // 2]
    append([first], tail=half)  # the second record is still being written
    assert was_scored(first["model"], first["version"], anchor, first["hub_id"])
    assert was_scored(first["model"], first["version"], anchor.tz_convert("UTC"), first["hub_id"])  # same instant
    assert not was_scored(first["model"], first["version"], anchor, "another hub")
    assert not was_scored(first["model"], "9", anchor, first["hub_id"])
    later = pd.Timestamp(second["anchor"])
    assert not was_scored(second["model"], second["version"], later, second["hub_id"])
    with (agent_dir() / "live_error.jsonl").open("a") as fh:
        fh.write(whole[len(half) :] + "\n")
    assert was_scored(second["model"], second["version"], later, second["hub_id"])

    (agent_dir() / "live_error.jsonl").write_text(json.dumps(second) + "\n")  # replaced by a shorter file
    assert not was_scored(first["model"], first["version"], anchor, first["hub_id"])
    assert was_scored(second["model"], second["version"], later, second["hub_id"])


@pytest.mark.parametrize("chunk", [64, 700, 1 << 22])
def test_status_reads_the_records_of_its_span_as_the_whole_file_has_them(chunk, monkeypatch, caplog):
    monkeypatch.setattr(live_error, "READ_CHUNK", chunk)
    rng = random.Random(chunk)
    rows = [record(rng, i) for i in range(120)]
    for i, r in enumerate(rows):  # scored in the order appended, in UTC, as the agent writes them
        r["scored_at"] = scored(i)
    path = agent_dir() / "live_error.jsonl"
    lines = [json.dumps(r) for r in rows]
    lines.insert(100, '{"model": "traffic-a", "vers')  # torn by a full disk, then the agent went on
    path.write_text("\n".join(lines) + "\n" + json.dumps(rows[-1])[:30])  # the last one still being written
    everything = live_errors()
    monkeypatch.setattr(durable, "_warned", set())  # each torn line is named once a process: once more here
    caplog.clear()
    for minutes in (0, 50, 99, 119, 200):
        since = T0 + pd.Timedelta(minutes=minutes)
        want = everything[pd.to_datetime(everything["scored_at"], utc=True) >= since].reset_index(drop=True)
        same(live_errors(since=since), want)
        mine = want[want["model"] == "traffic-a"].reset_index(drop=True)
        same(live_errors("traffic-a", since=since), mine)
    warned = {r.getMessage().split(" is not JSON")[0] for r in caplog.records if "not JSON" in r.getMessage()}
    assert warned == {f"{path} line 101", f"{path} line 122"}  # the numbers the whole read gives


def test_chunks_scored_before_the_span_are_not_parsed(monkeypatch):
    monkeypatch.setattr(live_error, "READ_CHUNK", 2000)
    rng = random.Random(3)
    rows = [record(rng, i) | {"scored_at": scored(i)} for i in range(300)]
    append(rows)
    parsed = []
    monkeypatch.setattr(live_error, "parse_line", lambda path, n, line: parsed.append(n) or json.loads(line))
    got = live_errors(since=T0 + pd.Timedelta(minutes=290))
    assert len(got) == 10 and len(parsed) < 30 and parsed[-1] == 300  # the last chunk or two, numbered as in the file
