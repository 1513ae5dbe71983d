"""benchmarks/soak.py runs end to end at tiny sizes: the server, the agent loop and the listener each measured."""

import importlib.util
import json
from pathlib import Path

import pytest

from tests.agent.test_listen import needs_broker

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


@pytest.mark.slow
@needs_broker
def test_the_soak_benchmark_measures_all_three_processes(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("soak_bench", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "soak.json"
    sizes = ["--requests", "200", "--every", "100", "--cycles", "5", "--readings", "2600", "--batch", "1300"]
    assert bench.main([*sizes, "--json", str(out)]) == 0
    found = {r["unit"]: r for r in json.loads(out.read_text())["results"]}
    assert set(found) == {"requests", "cycles", "readings"}
    assert found["requests"]["outcomes"]["stream ok"] == 2 * 20  # a fifth of every 100 on a stream
    assert found["cycles"]["statuses"] == {"decided": 15}  # a new step before each cycle: every model decides
    assert found["readings"]["end_at"] >= 2600 and all(r["end_mib"] > 0 for r in found.values())
