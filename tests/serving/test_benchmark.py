"""benchmarks/serving.py runs end to end (tiny settings) and writes only its own BENCHMARKS.md section."""

import importlib.util
import re
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serving.py"


@pytest.mark.slow
def test_the_serving_benchmark_runs_and_replaces_only_its_section(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("serving_bench", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    target = tmp_path / "BENCHMARKS.md"
    target.write_text("# Benchmarks\n\n## Serving\n\nold numbers\n\n## Training\n\nkeep me\n")
    args = ["--nodes", "8", "--levels", "1", "4", "--seconds", "0.5", "--memory-seconds", "2", "--write", str(target)]
    assert bench.main(args) == 0
    text = target.read_text()
    assert "old numbers" not in text and text.count("## Serving") == 1
    assert text.endswith("## Training\n\nkeep me\n")
    rows = re.findall(r"^\| (\d+) \| [\d.]+ \| [\d.]+ \| \d+ \| [\d.]+ \| (\d+) \|", text, re.M)
    assert [(c, e) for c, e in rows] == [("1", "0"), ("4", "0")]  # both levels ran, no failed request
    assert "| torch eager |" in text and "| ONNX Runtime |" in text and "Server RSS" in text
