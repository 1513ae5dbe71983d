"""benchmarks/longer_levels.py, the levels demand_selection.py --levels tries: no span reads an hour at or after the
forecast, and a level is the span's count against the usual count of the same hours."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
spec = importlib.util.spec_from_file_location("longer_levels", BENCHMARKS / "longer_levels.py")
levels = importlib.util.module_from_spec(spec)
saved = list(sys.path)
spec.loader.exec_module(levels)
sys.path[:] = saved

ANCHORS = np.arange(24 * 7, 24 * 14)  # every last input hour of a week; the forecast is the hour after


@pytest.mark.parametrize("kind", ["L24", "L3", "half", "today"])
def test_every_span_ends_by_the_last_input_hour_and_is_not_empty(kind):
    lo, hi = levels.spans(kind, ANCHORS)
    assert np.all(hi <= ANCHORS + 1) and np.all(lo < hi)
    if kind == "half":  # a whole morning or afternoon, the last one complete
        assert np.all(hi - lo == 12) and np.all(hi % 12 == 0) and np.all(ANCHORS + 1 - hi < 12)


def test_a_cell_running_at_twice_its_usual_level_reads_about_two():
    hours = np.arange(24 * 21)
    usual = 10 + 5 * np.sin(2 * np.pi * hours / 24)
    series = np.stack([usual, usual], axis=1)
    series[24 * 14 :, 1] *= 2  # cell 1 doubles in the third week, after the hours the usual level is taken from
    anchors = np.array([24 * 14 + 30, 24 * 20])
    out = levels.level_channels(series, anchors, ["L24"], first=0, end=24 * 14, first_weekday=0)
    assert out.shape == (2, 2, 1)
    assert np.allclose(out[:, 0, 0], 1.0) and np.all((out[:, 1, 0] > 1.9) & (out[:, 1, 0] < 2.0))  # (2u+5)/(u+5)


def test_od_levels_take_the_last_complete_half_day():
    od = {"od-dep": np.tile(np.arange(1.0, 9.0)[:, None], (1, 3))}  # half-day h holds h + 1 trips in each cell
    anchors = np.array([11, 12, 23, 47])  # forecasts at 12:00 (the morning complete), 13:00, 00:00, 00:00 of day 2
    out = levels.od_channels(od, anchors, ["od-dep"], first=0, end=96, first_weekday=0)  # Mon–Thu: no weekend
    for row, half in enumerate([0, 0, 1, 3]):
        usual = np.mean([h + 1 for h in range(8) if h % 2 == half % 2])  # mornings or afternoons
        assert np.allclose(out[row, :, 0], (half + 1 + 5) / (usual + 5)), row


def test_a_kind_that_does_not_exist_is_named():
    assert levels.check_kinds("od-dep,L24") == ["od-dep", "L24"]
    for bad in ("L", "L0", "week", "od-dep,x"):
        with pytest.raises(SystemExit, match="is not L<hours>, half, today, od-dep or od-arr"):
            levels.check_kinds(bad)
