"""Compaction merges a date folder's part files into one without changing what any reader of the hub gets.

Found by `python benchmarks/soak.py`: the listener's part per batch made every agent cycle open more files (0.6 s
to 1.7 s over 200 cycles). Each test compares with the same hub written without compaction, row order included.
"""

import json
import logging
import os
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import cityagent.agent.compact as compact
import cityagent.agent.microbatch as microbatch
import cityagent.hub.files as files
from cityagent.agent.act import append_decisions
from cityagent.agent.cli import app
from cityagent.agent.livehub import LiveHub
from cityagent.agent.lock import CompactionBusy, compact_lock
from cityagent.agent.partfiles import write_part
from cityagent.agent.readings import to_record
from cityagent.errors import HubError
from cityagent.hub import read_hub, write_hub
from cityagent.hub.parts import COVERS_KEY
from tests.factories import tiny_hub

TZ = "Asia/Shanghai"
NOW = pd.Timestamp("2030-01-01", tz="UTC")
START = pd.Timestamp("2026-03-02 04:15", tz=TZ)  # after tiny_hub's last step; 150 steps reach into 3 March


def listen(root: Path, steps: int = 150) -> None:
    """Append ``steps`` batches of one 15-minute step of three sensors, as the listener does."""
    write_hub(tiny_hub(), root)
    live = LiveHub(root)
    for i in range(steps):
        ts = (START + i * pd.Timedelta("15min")).isoformat()
        records = [
            to_record("traffic", {"sensor_id": s, "ts": ts, "speed": 30.0 + i, "flow": 4.0}, TZ)
            for s in ("s0", "s1", "s2")
        ]
        assert microbatch.append_batch(live, "traffic", records, now=NOW).accepted == 3


def parquet_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.parquet"))


@pytest.fixture(scope="module")
def as_appended(tmp_path_factory) -> Path:
    """The hub as the listener wrote it before compaction existed: one part per batch."""
    root = tmp_path_factory.mktemp("appended") / "hub"
    with pytest.MonkeyPatch.context() as m:
        m.setattr(microbatch, "compact_due", lambda *a: [])
        listen(root)
    return root


@pytest.fixture
def uncompacted(as_appended, tmp_path) -> Path:
    """A private copy of ``as_appended``."""
    return Path(shutil.copytree(as_appended, tmp_path / "plain"))


def same_tables(a: Path, b: Path) -> None:
    left, right = read_hub(a), read_hub(b)
    assert set(left.tables) == set(right.tables)
    for name in left.tables:
        pd.testing.assert_frame_equal(left.table(name), right.table(name), check_exact=True)


def test_the_listener_compacts_as_it_appends_and_every_table_reads_as_before(tmp_path, uncompacted):
    assert len(parquet_files(uncompacted / "traffic" / "date=2026-03-02")) == 80  # part-0 + 79 batches (71 on 3 March)

    listen(tmp_path / "hub")
    traffic = tmp_path / "hub" / "traffic"
    done = parquet_files(traffic / "date=2026-03-02")  # moved past: one file, named after its first part
    assert len(done) == 1 and done[0].startswith("part-0+")
    assert len(parquet_files(traffic / "date=2026-03-03")) < compact.COMPACT_AT  # still written: merged every 24
    same_tables(tmp_path / "hub", uncompacted)
    held = json.loads(pq.read_schema(traffic / "date=2026-03-02" / done[0]).metadata[COVERS_KEY])
    assert held[0].startswith("part-0") and len(held) >= 2  # merged at 24 parts, then with the rest


def test_hub_compact_merges_a_whole_hub_and_the_listener_still_knows_every_key(uncompacted, as_appended):
    result = CliRunner().invoke(app, ["hub", "compact", str(uncompacted)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "compacted 2 of 8 date folder(s)" in said and "151 part files → 2 (498 rows)" in said  # 80 and 71
    for folder in (uncompacted / "traffic").glob("date=*"):
        assert len(parquet_files(folder)) == 1
    same_tables(uncompacted, as_appended)

    live = LiveHub(uncompacted)  # keys read from the compacted parts: a replayed reading is still a duplicate
    again = to_record("traffic", {"sensor_id": "s1", "ts": START.isoformat(), "speed": 1.0, "flow": 1.0}, TZ)
    result = microbatch.append_batch(live, "traffic", [again], now=NOW)
    assert [kind for kind, _ in result.rejected.values()] == ["duplicate"]


def test_a_compaction_cut_short_before_deleting_leaves_files_every_reader_ignores(tmp_path, uncompacted, monkeypatch):
    expected = read_hub(uncompacted)
    folder = uncompacted / "traffic" / "date=2026-03-02"
    with monkeypatch.context() as m:  # killed after the rename, before the parts were deleted
        m.setattr(compact, "_remove", lambda paths: 0)
        merged = compact.compact_hub(uncompacted, ["traffic"])
    assert [r.parts for r in merged] == [0, 80, 71]  # 1 March holds one part already
    assert len(parquet_files(folder)) == 81  # the 80 parts and the compacted one
    for name in ("traffic", "demand"):
        pd.testing.assert_frame_equal(read_hub(uncompacted).table(name), expected.table(name), check_exact=True)
    live = LiveHub(uncompacted)
    assert [p.name for p in live.parts("traffic", "2026-03-02")] == [n for n in parquet_files(folder) if "+" in n]

    result = CliRunner().invoke(app, ["hub", "compact", str(uncompacted)])
    assert result.exit_code == 0, result.output
    assert "removed 151 file(s) an interrupted compaction left" in " ".join(result.output.split())
    assert len(parquet_files(folder)) == 1
    pd.testing.assert_frame_equal(read_hub(uncompacted).table("traffic"), expected.table("traffic"), check_exact=True)


def test_a_reader_whose_listing_a_compaction_overtook_lists_again(tmp_path, uncompacted, monkeypatch):
    expected = read_hub(uncompacted).table("traffic")
    real, calls = files._read_one, []

    def compact_after_listing(fs, path, name):
        calls.append(path)
        if name == "traffic" and len(calls) == 1:  # the table was listed; now its parts are merged and deleted
            compact.compact_hub(uncompacted, ["traffic"])
        return real(fs, path, name)

    monkeypatch.setattr(files, "_read_one", compact_after_listing)
    got = read_hub(uncompacted)
    pd.testing.assert_frame_equal(got.table("traffic"), expected, check_exact=True)
    assert got.origin.tables["traffic"] == "traffic/ (3 files)"


def test_the_agent_compacts_its_decisions(tmp_path):
    write_hub(tiny_hub(), tmp_path / "hub")
    hub = read_hub(tmp_path / "hub")
    written = []
    for i in range(compact.COMPACT_AT + 3):
        ts = pd.Timestamp("2026-03-02 09:00", tz=TZ) + pd.Timedelta(minutes=i)
        rows = pd.DataFrame({"ts": [ts], "kind": "congestion_alert", "target_id": [f"s{i % 3}"], "value": float(i)})
        append_decisions(tmp_path / "hub", hub, rows)
        written.append(rows)
    folder = tmp_path / "hub" / "decisions" / "date=2026-03-02"
    assert len(parquet_files(folder)) == 4  # merged at 24 parts, then 3 more
    got = read_hub(tmp_path / "hub").table("decisions")
    assert got["value"].tolist() == [float(i) for i in range(compact.COMPACT_AT + 3)]


def test_parts_that_do_not_merge_are_left_as_they_are(tmp_path, caplog):
    write_hub(tiny_hub(), tmp_path / "hub")
    folder = tmp_path / "hub" / "decisions" / "date=2026-03-02"
    ts = pd.Timestamp("2026-03-02 09:00", tz=TZ)
    write_part(folder, pd.DataFrame({"ts": [ts], "kind": "alert", "target_id": ["s0"], "value": 1.0}))
    write_part(folder, pd.DataFrame({"ts": [ts], "kind": "alert", "target_id": ["s1"], "value": [b"\x00"]}))
    before = parquet_files(folder)
    with caplog.at_level(logging.WARNING):
        (result,) = compact.compact_hub(tmp_path / "hub", ["decisions"])
        (again,) = compact.compact_hub(tmp_path / "hub", ["decisions"])  # as a writer retries after each append
    assert result.path is None and "do not merge" in result.skipped and parquet_files(folder) == before
    assert again.skipped == result.skipped and caplog.text.count("left 2 parts") == 1  # said once, not per append

    write_part(folder, pd.DataFrame({"ts": [ts], "kind": "alert", "target_id": ["s2"], "value": 2.0}))
    with caplog.at_level(logging.WARNING):
        (third,) = compact.compact_hub(tmp_path / "hub", ["decisions"])  # new parts: tried again
    assert third.path is None and "left 3 parts" in caplog.text


def test_two_compacted_parts_holding_the_same_part_are_an_error_naming_both(tmp_path, uncompacted):
    folder = uncompacted / "traffic" / "date=2026-03-03"
    first = sorted(folder.glob("*.parquet"))[0]
    table = pq.read_table(first)
    for token in ("aaaa", "bbbb"):  # as two compactions side by side would write (the lock prevents it)
        meta = {**table.schema.metadata, COVERS_KEY: json.dumps([first.name]).encode()}
        pq.write_table(table.replace_schema_metadata(meta), folder / f"{first.stem}+{token}.parquet")
    with pytest.raises(HubError, match=r"\+aaaa\.parquet and .*\+bbbb\.parquet both hold the readings of"):
        read_hub(uncompacted)


def test_a_compacted_part_without_its_list_is_an_error_naming_it(tmp_path, uncompacted):
    folder = uncompacted / "traffic" / "date=2026-03-03"
    first = sorted(folder.glob("*.parquet"))[0]
    pq.write_table(pa.table({"x": [1]}), folder / f"{first.stem}+cccc.parquet")
    with pytest.raises(HubError, match=r"\+cccc\.parquet is named as a compacted part but its metadata"):
        read_hub(uncompacted)


def test_hub_compact_refuses_what_it_cannot_compact(tmp_path, uncompacted):
    runner = CliRunner()
    bad = runner.invoke(app, ["hub", "compact", str(uncompacted), "--table", "sensors"])
    assert isinstance(bad.exception, HubError) and "partitioned tables are ['traffic'" in str(bad.exception)
    remote = runner.invoke(app, ["hub", "compact", "memory://hub"])
    assert isinstance(remote.exception, HubError) and "not a local hub directory" in str(remote.exception)
    with compact_lock(uncompacted):
        busy = runner.invoke(app, ["hub", "compact", str(uncompacted)])
        assert isinstance(busy.exception, CompactionBusy) and f"pid {os.getpid()}" in str(busy.exception)
        before = parquet_files(uncompacted / "traffic" / "date=2026-03-03")
        assert compact.compact_due(uncompacted, "traffic", []) == []  # a writer skips; the next append tries again
        assert parquet_files(uncompacted / "traffic" / "date=2026-03-03") == before
