"""A replay time must be a step of the hub's grid; off it, the error names the step and the two nearest steps."""

import pandas as pd
import pytest

from cityagent.agent.grid import OffGrid, on_grid, step_words
from cityagent.agent.sense import steps_at
from cityagent.hub import Hub, HubMeta

TZ = "Asia/Shanghai"


def hub_of(times: pd.DatetimeIndex, step: str, **extra) -> Hub:
    traffic = pd.DataFrame({"sensor_id": "s0", "ts": times, "speed": 50.0})
    return Hub({"traffic": traffic}, HubMeta(step=step, timezone=TZ, extra=extra))


def at(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=TZ)


@pytest.fixture(scope="module")
def five_min() -> Hub:
    return hub_of(pd.date_range(at("2026-03-02 00:00"), periods=3 * 288, freq="5min"), "5min")


def test_a_step_of_the_grid_passes_in_the_hubs_timezone(five_min):
    assert on_grid(five_min, at("2026-03-03 08:05")) == at("2026-03-03 08:05")
    assert on_grid(five_min, pd.Timestamp("2026-03-03 08:05")) == at("2026-03-03 08:05")  # naive: hub time
    assert on_grid(five_min, pd.Timestamp("2026-03-03 00:05", tz="UTC")) == at("2026-03-03 08:05")
    assert on_grid(five_min, at("2026-04-01 12:00")) == at("2026-04-01 12:00")  # past the data: same grid


@pytest.mark.parametrize(
    ("time", "near"),
    [
        ("2026-03-03 08:07", "08:05 or 08:10"),
        ("2026-03-03 08:05:30", "08:05 or 08:10"),
        ("2026-03-03 23:58", "23:55 or 2026-03-04 00:00"),
    ],
)
def test_a_time_between_steps_is_refused_naming_the_step_and_the_nearest_steps(five_min, time, near):
    with pytest.raises(OffGrid) as e:
        on_grid(five_min, at(time), "--at")
    assert str(e.value) == f"--at {at(time).isoformat()} is not on the hub's 5-minute grid: use {near}"


def test_the_window_of_a_time_between_steps_is_refused_not_read_as_missing(five_min):
    with pytest.raises(OffGrid, match=r"not on the hub's 5-minute grid: use 08:05 or 08:10"):
        steps_at(five_min, at("2026-03-03 08:07"), (-2, -1, 0))
    got = steps_at(five_min, at("2026-03-03 08:10"), (-2, -1, 0))
    assert list(got) == [at("2026-03-03 08:00"), at("2026-03-03 08:05"), at("2026-03-03 08:10")]


def test_the_grid_steps_from_the_hubs_first_reading():
    hub = hub_of(pd.date_range(at("2026-03-02 00:02"), periods=48, freq="5min"), "5min")  # :02, :07, ...
    assert on_grid(hub, at("2026-03-02 01:07")) == at("2026-03-02 01:07")
    with pytest.raises(OffGrid, match=r"use 01:02 or 01:07"):
        on_grid(hub, at("2026-03-02 01:05"))


def test_an_operating_hours_hub_names_the_last_and_first_slots_around_the_night():
    extra = {"slots_per_day": 18 * 4, "first_slot": "06:00"}  # 06:00–23:45 every 15 min
    every = pd.date_range(at("2026-03-02 00:00"), periods=3 * 96, freq="15min")
    hub = hub_of(every[every.hour >= 6], "15min", **extra)
    assert on_grid(hub, at("2026-03-03 06:00")) == at("2026-03-03 06:00")
    with pytest.raises(OffGrid) as e:  # 02:00 is a step of a 15-minute grid; the stations are closed then
        on_grid(hub, at("2026-03-03 02:00"))
    assert str(e.value).endswith(
        "is outside the hub's operating hours (06:00–24:00, 72 15-minute slots a day): use 2026-03-02 23:45 or 06:00"
    )
    with pytest.raises(OffGrid, match=r"is not on the hub's 15-minute grid: use 07:45 or 08:00$"):
        on_grid(hub, at("2026-03-03 07:50"))


def test_a_metro_night_hour_is_named_as_outside_operating_hours():
    every = pd.date_range(at("2017-07-29 00:00"), periods=3 * 24, freq="1h")
    hub = hub_of(every[every.hour >= 6], "1h", slots_per_day=18, first_slot="06:00")  # Chongqing metro's slots
    with pytest.raises(OffGrid, match=r"03:00:00\+08:00 is outside the hub's operating hours \(06:00–24:00, 18 1-hour"):
        steps_at(hub, at("2017-07-31 03:00"), (-2, -1, 0))
    assert list(steps_at(hub, at("2017-07-31 06:00"), (-1, 0))) == [at("2017-07-30 23:00"), at("2017-07-31 06:00")]


@pytest.mark.parametrize(("step", "words"), [("5min", "5-minute"), ("1h", "1-hour"), ("30s", "30-second")])
def test_steps_read_as_words(step, words):
    assert step_words(HubMeta(step=step).step_delta) == words
