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
    args = ["--nodes", "8", "--levels", "1", "4", "--seconds", "0.5", "--memory-seconds", "2", "--one-client-n", "50",
            "--write", str(target)]  # fmt: skip
    assert bench.main(args) == 0
    text = target.read_text()
    assert "old numbers" not in text and text.count("## Serving") == 1
    assert text.endswith("## Training\n\nkeep me\n")
    rows = re.findall(r"^\| (\w+) \| (\d+) \| [\d.]+ \| [\d.]+ \| \d+ \| [\d.]+ \| (\d+) \|", text, re.M)
    # both models, both levels, no failed request
    assert rows == [("stid", "1", "0"), ("stid", "4", "0"), ("gru", "1", "0"), ("gru", "4", "0")]
    one_client = re.findall(r"^\| (\w+) \| x \[1, 12, 8, (\d+)\] → y \[1, 12, 8\] \|", text, re.M)
    assert one_client == [("stid", "10"), ("gru", "2")]  # STID got its calendar channels
    assert "| stid, torch eager |" in text and "| gru, ONNX Runtime |" in text and "Server RSS" in text


@pytest.mark.slow
def test_the_grpc_compute_benchmark_prints_one_row_per_round(capsys):
    spec = importlib.util.spec_from_file_location("grpc_compute", SCRIPT.parent / "grpc_compute.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--rounds", "2", "-n", "20"]) == 0
    rows = re.findall(r"^\| (\d) \| [\d.]+ \| [\d.]+ \| [\d.]+ \| -?[\d.]+ \|$", capsys.readouterr().out, re.M)
    assert rows == ["1", "2"]
