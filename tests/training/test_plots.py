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
