"""`cityagent hub synth / import / copy` never replace an existing hub without --force."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cityagent.agent.cli import app
from cityagent.agent.partfiles import write_part
from cityagent.errors import HubError
from cityagent.hub import read_hub, write_hub
from tests.factories import tiny_hub

DATA = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()
SPEED = DATA / "traffic" / "sz_taxi" / "sz_speed_first40roads.csv"
SYNTH = ["--sensors", "4", "--zones", "4", "--days", "1"]


def cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def refused(result) -> str:
    assert result.exit_code != 0 and isinstance(result.exception, HubError), result.output
    return str(result.exception)


def with_decisions(root: Path) -> pd.DataFrame:
    """Append 2 agent decisions to the hub at ``root``, as `cityagent agent run` does."""
    ts = pd.Timestamp("2026-03-02 09:00", tz=read_hub(root).meta.timezone)
    rows = pd.DataFrame({"ts": [ts, ts], "kind": "congestion_alert", "target_id": ["s0", "s1"], "value": 9.0})
    write_part(root / "decisions" / "date=2026-03-02", rows)
    return read_hub(root).table("decisions")


def test_synth_refuses_to_wipe_a_hub_with_decisions_unless_forced(tmp_path):
    out = tmp_path / "hub"
    assert cli("hub", "synth", "--out", out, *SYNTH).exit_code == 0
    kept = with_decisions(out)
    msg = refused(cli("hub", "synth", "--out", out, *SYNTH, "--seed", "3"))
    assert "the hub 'synthetic' (source: cityagent synth seed=0" in msg and "2 decisions the agent made" in msg
    assert "--force" in msg
    pd.testing.assert_frame_equal(read_hub(out).table("decisions"), kept)  # untouched
    assert read_hub(out).meta.source == "cityagent synth seed=0"
    assert cli("hub", "synth", "--out", out, *SYNTH, "--seed", "3", "--force").exit_code == 0
    assert read_hub(out).meta.source == "cityagent synth seed=3" and not read_hub(out).has("decisions")


def test_synth_into_a_new_or_empty_directory_needs_no_force(tmp_path):
    (tmp_path / "empty").mkdir()
    assert cli("hub", "synth", "--out", tmp_path / "empty", *SYNTH).exit_code == 0
    assert read_hub(tmp_path / "empty").meta.synthetic


@pytest.mark.skipif(not SPEED.is_file(), reason=f"public dataset not found at {SPEED}")
def test_import_refuses_to_replace_a_hub_unless_forced(tmp_path):
    out = tmp_path / "sz"
    write_hub(tiny_hub(), out)
    msg = refused(cli("hub", "import", "tgcn-csv", SPEED, "--out", out))
    assert f"{out} already holds the hub" in msg and "another --out" in msg
    assert len(read_hub(out).table("sensors")) == 3
    assert cli("hub", "import", "tgcn-csv", SPEED, "--out", out, "--force").exit_code == 0
    assert len(read_hub(out).table("sensors")) == 40


def test_copy_refuses_to_replace_a_hub_directory_unless_forced(tmp_path):
    write_hub(tiny_hub(sensors=2), tmp_path / "a")
    write_hub(tiny_hub(sensors=3), tmp_path / "b")
    msg = refused(cli("hub", "copy", tmp_path / "a", tmp_path / "b"))
    assert "another DEST" in msg and len(read_hub(tmp_path / "b").table("sensors")) == 3
    assert cli("hub", "copy", tmp_path / "a", tmp_path / "b", "--force").exit_code == 0
    assert len(read_hub(tmp_path / "b").table("sensors")) == 2


@pytest.mark.postgres
def test_copy_into_a_postgres_prefix_holding_another_hub_is_refused(tmp_path, pg_url, sql_prefix):
    sz, xian = tiny_hub(sensors=2), tiny_hub(sensors=4)
    sz.meta.name, xian.meta.name = "sz", "xian"
    write_hub(sz, tmp_path / "sz")
    write_hub(xian, tmp_path / "xian")
    assert cli("hub", "copy", tmp_path / "sz", pg_url, "--prefix", sql_prefix).exit_code == 0
    msg = refused(cli("hub", "copy", tmp_path / "xian", pg_url, "--prefix", sql_prefix))
    assert f"(prefix '{sql_prefix}') already holds the hub 'sz'" in msg and f"{sql_prefix}traffic" in msg
    assert "another --prefix or database" in msg
    assert read_hub(pg_url, prefix=sql_prefix).meta.name == "sz"
    assert cli("hub", "copy", tmp_path / "xian", pg_url, "--prefix", sql_prefix, "--force").exit_code == 0
    assert read_hub(pg_url, prefix=sql_prefix).meta.name == "xian"


@pytest.mark.skipif(not SPEED.is_file(), reason=f"public dataset not found at {SPEED}")
def test_import_into_a_sql_prefix_is_refused_the_second_time(tmp_path):
    url = f"sqlite:///{tmp_path / 'hubs.db'}"
    assert cli("hub", "import", "tgcn-csv", SPEED, "--out", url, "--prefix", "sz_").exit_code == 0
    assert read_hub(url, prefix="sz_").meta.name == "sz_speed_first40roads"
    msg = refused(cli("hub", "import", "tgcn-csv", SPEED, "--out", url, "--prefix", "sz_"))
    assert "(prefix 'sz_') already holds the hub 'sz_speed_first40roads'" in msg
    assert cli("hub", "import", "tgcn-csv", SPEED, "--out", url, "--prefix", "other_").exit_code == 0


def test_a_log_file_gets_whole_table_rows_not_80_columns(tmp_path):
    """Piped or redirected output (a service's log) has no terminal width; rich's 80-column fallback folded each row
    of the agent's and the hub's tables over several lines. COLUMNS, when set, still wins."""
    hub = tmp_path / "hub"
    write_hub(tiny_hub(), hub)
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    run = [sys.executable, "-c", "from cityagent.agent.cli import main; main()", "hub", "validate", str(hub)]
    row = "│ traffic   │ 72   │ 3   │ 2026-03-01 22:00:00+08:00 │ 2026-03-02 03:45:00+08:00 │"  # 84 characters
    out = subprocess.run(run, capture_output=True, text=True, env=env, check=True).stdout
    assert row in out.splitlines(), out
    narrow = subprocess.run(run, capture_output=True, text=True, env={**env, "COLUMNS": "80"}, check=True).stdout
    assert row not in narrow.splitlines() and "│ traffic" in narrow, narrow


def test_a_replace_cut_short_names_the_kept_hub_and_is_not_buried(tmp_path):
    """A kill between replace_dir's two renames leaves no hub at the path and the previous one kept aside; every
    command used to say 'create one' (and `hub synth` then hid the kept hub, decisions and all, for good)."""
    out = tmp_path / "hub"
    assert cli("hub", "synth", "--out", out, *SYNTH).exit_code == 0
    kept = with_decisions(out)
    aside = tmp_path / ".hub.old-0123abcd"
    out.rename(aside)  # the state a SIGKILL after the first rename leaves
    with pytest.raises(HubError, match=rf"{aside} holds the hub that was at {out} .*`mv {aside} {out}`"):
        read_hub(out)
    refusal = refused(cli("hub", "synth", "--out", out, *SYNTH))
    assert f"`mv {aside} {out}`" in refusal and "--force" in refusal
    aside.rename(out)  # the advice works
    assert len(read_hub(out).table("decisions")) == len(kept)


def test_forcing_a_replace_of_a_hub_an_agent_runs_on_is_refused(tmp_path):
    from cityagent.agent.lock import hub_lock

    out = tmp_path / "hub"
    assert cli("hub", "synth", "--out", out, *SYNTH).exit_code == 0
    kept = with_decisions(out)
    with hub_lock(out):  # as `cityagent agent run` holds it (another process: flock is per open file)
        result = cli("hub", "synth", "--out", out, *SYNTH, "--force")
    assert "cannot replace" in refused(result) and "an agent runs on it (pid " in str(result.exception)
    assert len(read_hub(out).table("decisions")) == len(kept)
    assert cli("hub", "synth", "--out", out, *SYNTH, "--force").exit_code == 0  # once it stopped


def test_half_written_copies_left_by_killed_writes_are_named(tmp_path, caplog):
    out = tmp_path / "hub"
    (tmp_path / ".hub.tmp-deadbeef").mkdir()  # a `hub copy` killed mid-write
    (tmp_path / ".hub.synth-0badc0de").mkdir()  # a `hub synth` killed mid-write
    with caplog.at_level(logging.WARNING, logger="cityagent.hub.files"):
        assert cli("hub", "synth", "--out", out, *SYNTH).exit_code == 0
    assert "2 half-written copies of" in caplog.text and ".hub.tmp-deadbeef" in caplog.text
    assert ".hub.synth-0badc0de" in caplog.text
