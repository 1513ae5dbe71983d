"""Logged plots read well: whole-epoch ticks, no clipped label, named panels in the task's units, a recent span."""

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg

from cityagent.training.config import load_config
from cityagent.training.plots import font_for, forecast_figure, loss_figure
from cityagent.training.report import task_units
from cityagent.training.task import load_task

ROOT = Path(__file__).resolve().parents[2]


def drawn(fig):
    FigureCanvasAgg(fig).draw()
    return fig


def test_the_loss_curve_ticks_whole_epochs_and_keeps_its_labels_inside():
    fig = drawn(loss_figure([{"epoch": 0, "train_loss": 0.9, "val_loss": 1.0}, {"epoch": 1, "train_loss": 0.5}]))
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    assert [t for t in ax.get_xticks() if lo <= t <= hi] == [0, 1]
    width, height = fig.bbox.width, fig.bbox.height
    for label in (ax.xaxis.label, ax.yaxis.label):
        box = label.get_window_extent()
        assert box.y0 >= 0 and box.x0 >= 0 and box.y1 <= height and box.x1 <= width, label.get_text()


def hourly(days: int, nodes: int = 3, horizon: int = 3):
    start = pd.Timestamp("2017-05-01", tz="Asia/Shanghai")
    t = pd.date_range(start, periods=days * 24 + horizon, freq="1h").to_numpy()  # tz-aware, as a split's
    times = t[np.arange(days * 24)[:, None] + np.arange(horizon)[None, :]]  # [S, H], as Split.target_times
    rng = np.random.default_rng(0)
    y = rng.gamma(2.0, 50.0, size=(len(times), horizon, nodes)).astype(np.float32)  # [S, H, N]
    return times, y, np.ones_like(y, dtype=bool)


def test_forecast_panels_show_names_units_and_the_last_week():
    times, y, mask = hourly(days=60)
    fig = forecast_figure(times, y, mask, y, ["0", "1", "2"], unit="riders per hour", names=["Jiefangbei", "1", "x"])
    titles = sorted(ax.get_title() for ax in fig.axes)
    assert titles == ["1", "Jiefangbei (0)", "x (2)"]  # a name, with its id where they differ
    assert {ax.get_ylabel() for ax in fig.axes} == {"riders per hour"}
    span = max(len(line.get_xdata()) for ax in fig.axes for line in ax.get_lines())
    assert span == 7 * 24 + 1 and "last 7 days" in fig.get_suptitle()  # not two months in one panel
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["actual", "forecast 1 step ahead", "forecast 3 steps ahead"]


def test_a_name_no_installed_font_draws_falls_back_to_the_id_and_says_why(recwarn):
    times, y, mask = hourly(days=2)
    fig = drawn(forecast_figure(times, y, mask, y, ["0", "1", "2"], names=["小什字", "Jiefangbei", "x"]))
    assert not [w for w in recwarn if "missing from font" in str(w.message)]  # no empty boxes drawn
    titles = {ax.get_title() for ax in fig.axes}
    if font_for("小什字") is None:  # this machine has no CJK font
        assert titles == {"0", "Jiefangbei (1)", "x (2)"} and "no installed font draws" in fig.get_suptitle()
    else:
        assert "小什字 (0)" in titles


def test_a_short_split_is_drawn_whole_with_leads_in_time():
    times, y, mask = hourly(days=2)
    fig = forecast_figure(times, y, mask, y, ["a", "b", "c"], leads=[60, 120, 180])
    assert not fig.get_suptitle() and max(len(ln.get_xdata()) for ln in fig.axes[0].get_lines()) == 48
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()][1:] == [
        "forecast 1 h ahead",
        "forecast 3 h ahead",
    ]


def test_metro_forecasts_are_in_riders_of_named_stations_over_operating_hours(shared_data, monkeypatch):
    monkeypatch.setenv("CITYAGENT_SHARED_DATA", str(shared_data))
    cfg = load_config(ROOT / "configs/datasets/metro-chongqing-uctb.yaml", {"model.name": "ha", "model.params": {}})
    task, _ = load_task(cfg.task)
    assert task_units(cfg, task) == "riders per hour"  # not the synthetic city's "trips per step"
    names = task.extra["node_names"]
    assert len(names) == len(task.nodes) and names[0] != task.nodes[0]
    assert task.extra["operating_hours"] == "18 slots a day from 06:00"


def operating_hours(days: int, nodes: int = 3, horizon: int = 3):
    """Hourly metro slots 06:00–23:00 each day (no service at night), as an 18-slot operating-hours split's."""
    day = pd.date_range("2017-05-01 06:00", periods=18, freq="1h", tz="Asia/Shanghai")
    t = pd.DatetimeIndex(np.concatenate([(day + pd.Timedelta(days=d)).to_numpy() for d in range(days + 1)]))
    samples = days * 18
    times = t.to_numpy()[np.arange(samples)[:, None] + np.arange(horizon)[None, :]]  # [S, H], slots not hours
    rng = np.random.default_rng(0)
    y = rng.gamma(2.0, 50.0, size=(samples, horizon, nodes)).astype(np.float32)  # [S, H, N]
    return times, y, np.ones_like(y, dtype=bool)


def nan_breaks(line) -> list[pd.Timestamp]:
    """Where a drawn line is broken by a NaN point (its x, in the city's clock)."""
    x, v = np.asarray(line.get_xdata()), np.asarray(line.get_ydata(), dtype=np.float64)
    return [pd.Timestamp(x[k]).tz_convert("Asia/Shanghai") for k in np.flatnonzero(np.isnan(v))]


def test_lines_and_bands_break_over_the_closed_night_of_an_operating_hours_hub():
    times, y, mask = operating_hours(days=3)
    pred = np.stack([y * 0.8, y, y * 1.2], axis=-1)  # [S, H, N, Q]: the outer levels are a band
    fig = drawn(forecast_figure(times, y, mask, pred, ["a", "b", "c"], step_name="operating-hours slot"))
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == [
        "actual",
        "forecast 1 operating-hours slot ahead",
        "forecast 3 operating-hours slots ahead",
    ]
    for line, nights in zip(lines, (2, 2, 3), strict=True):  # 3 slots ahead, the last evening's targets are tomorrow
        breaks = nan_breaks(line)
        assert len(breaks) == nights and all(0 <= b.hour < 6 for b in breaks), breaks  # one per night, inside it
        assert len(line.get_xdata()) == 3 * 18 + nights
    (band,) = fig.axes[0].collections
    assert len(band.get_paths()) == 3  # one shaded patch per day, none across the night


def test_a_contiguous_series_is_drawn_unbroken():
    times, y, mask = hourly(days=3)
    pred = np.stack([y * 0.8, y, y * 1.2], axis=-1)
    fig = forecast_figure(times, y, mask, pred, ["a", "b", "c"])
    for line in fig.axes[0].get_lines():
        assert not nan_breaks(line) and len(line.get_xdata()) == 3 * 24
    assert len(fig.axes[0].collections[0].get_paths()) == 1
