"""The correlation graph benchmarks/demand_selection.py --graph tries: it links cells by their shared deviations,
not by the daily cycle every cell shares."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "demand_selection.py"
spec = importlib.util.spec_from_file_location("demand_selection", SCRIPT)
selection = importlib.util.module_from_spec(spec)
saved = list(sys.path)
spec.loader.exec_module(selection)
sys.path[:] = saved  # the script puts benchmarks/ first on the path for its own imports


def test_cells_sharing_deviations_link_even_when_another_shares_the_daily_cycle():
    rng = np.random.default_rng(0)
    hours = np.arange(24 * 21)
    slots = hours % 24
    event = rng.normal(0, 1, len(hours))  # what cells 0 and 1 share beyond their daily cycles

    def cycle(phase: float) -> np.ndarray:
        return 50 + 40 * np.sin(2 * np.pi * (slots + phase) / 24)

    series = np.stack([cycle(0), cycle(6), cycle(0), cycle(12)], axis=1) + rng.normal(0, 0.3, (len(hours), 4))
    series[:, 0] += 3 * event
    series[:, 1] += 3 * event
    graph = selection.correlation_graph(series, slots, k=1)
    assert graph[0].tolist() == [0, 1, 0, 0] and graph[1].tolist() == [1, 0, 0, 0]
    assert np.all(graph.sum(1) == 1) and np.all(np.diag(graph) == 0)
    # the counts themselves link cell 0 to the cell with its cycle instead
    assert selection.correlation_graph(series, slots, k=1, deviations=False)[0].tolist() == [0, 0, 1, 0]


def test_a_graph_spec_is_checked_before_any_fit():
    assert selection.graph_spec("grid+corr:4") == ("grid+corr", 4)
    for bad in ("corr", "corr:0", "corr:x", "knn:4"):
        with pytest.raises(SystemExit, match="use grid, corr:K"):
            selection.graph_spec(bad)
