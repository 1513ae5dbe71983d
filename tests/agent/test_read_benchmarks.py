"""benchmarks/compaction.py, history.py, listener_keys.py, cycle_read.py, live_error_year.py and replay_backlog.py run
end to end at tiny sizes, checking their own output."""

import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_bench", BENCHMARKS / f"{name}.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


@pytest.mark.slow
def test_the_compaction_benchmark_compares_both_hubs(capsys):
    assert load("compaction").main(["--steps", "30", "--every", "30", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "both hubs read back equal" in out
    row = next(line.split() for line in out.splitlines() if line.strip().startswith("30 "))
    plain, compacted = int(row[1]), int(row[3])  # "30  111 / 42  0.295  0.109  2.7"
    assert compacted < plain and float(row[-1]) > 0


@pytest.mark.slow
def test_the_history_benchmark_reads_less_of_an_old_hub(capsys):
    assert load("history").main(["--days", "6", "--history", "2D", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    table = (line.split() for line in out.splitlines())
    rows = {r[0]: r for r in table if len(r) == 4 and r[0] in ("whole", "history")}  # read, rows, MiB, seconds
    assert int(rows["history"][1].replace(",", "")) < int(rows["whole"][1].replace(",", ""))
    assert "the history read equals the whole hub's rows" in out


@pytest.mark.slow
def test_the_listener_keys_benchmark_compares_both_representations(capsys):
    assert load("listener_keys").main(["--sensors", "300", "--steps", "12"]) == 0
    out = capsys.readouterr().out
    assert "both answer every lookup alike" in out and "3,600 readings" in out


@pytest.mark.slow
def test_the_cycle_read_benchmark_reads_less_and_builds_the_same(capsys):
    assert load("cycle_read").main(["--sensors", "30", "--days", "6", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    rows = {line[:28].strip(): line[28:].split() for line in out.splitlines() if line.startswith(("history", "needed"))}
    assert int(rows["needed"][0].replace(",", "")) < int(rows["history"][0].replace(",", ""))
    assert "same window, drift values and decisions found" in out


def test_the_live_error_benchmark_gives_the_same_mae_both_ways(capsys):  # 2 s: in the default run
    assert load("live_error_year").main(["--days", "3", "--cycles", "3"]) == 0
    out = capsys.readouterr().out
    assert "2,592 records" in out and "both give the same MAE for every model and cycle" in out


@pytest.mark.slow
def test_the_replay_benchmark_checks_every_reading_entered_once(capsys):
    assert load("replay_backlog").main(["--sensors", "4", "--steps", "30"]) == 0
    assert "every reading entered the hub once; no dead letter is left" in capsys.readouterr().out
