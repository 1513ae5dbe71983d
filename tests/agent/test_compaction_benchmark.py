"""benchmarks/compaction.py runs end to end at a tiny size: both hubs read back equal and the reads are timed."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "compaction.py"


@pytest.mark.slow
def test_the_compaction_benchmark_compares_both_hubs(capsys):
    spec = importlib.util.spec_from_file_location("compaction_bench", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--steps", "30", "--every", "30", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "both hubs read back equal" in out
    row = next(line.split() for line in out.splitlines() if line.strip().startswith("30 "))
    plain, compacted = int(row[1]), int(row[3])  # "30  111 / 42  0.295  0.109  2.7"
    assert compacted < plain and float(row[-1]) > 0
