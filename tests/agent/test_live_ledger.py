"""The agent keeps what live_error.jsonl says as it needs it, reading only what was appended since: the drift's
live MAE equals the whole file's, in any chunking, and an anchor is scored once across restarts."""

import json
import random
from dataclasses import asdict

import pandas as pd
import pytest

from cityagent.agent import live_error
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
