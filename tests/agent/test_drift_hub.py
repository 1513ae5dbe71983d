"""hub_values lays out only the rows of its span, and gives exactly what slicing the whole table's tensor gave."""

import numpy as np
import pandas as pd
import pytest

from cityagent.agent.drift_hub import hub_values
from cityagent.errors import HubError
from cityagent.hub.hub import Hub, HubMeta
from cityagent.hub.synth.memory import synth_hub
from cityagent.hub.tensor import index_between, to_tensor

TZ = "Asia/Shanghai"


def whole_then_sliced(hub, table, channels, start=None, end=None):
    """What hub_values did before: the whole table's [T, N, C] tensor, then the steps of the span."""
    st = to_tensor(hub, table, list(channels))
    keep = np.ones(len(st.ts), dtype=bool)
    if start is not None:
        keep &= st.ts >= pd.Timestamp(start).tz_convert(TZ)
    if end is not None:
        keep &= st.ts < pd.Timestamp(end).tz_convert(TZ)
    return {c: st.channel(c)[keep] for c in channels}, list(st.nodes), st.ts[keep]


@pytest.fixture(scope="module")
def city():
    hub = synth_hub(sensors=6, zones=4, days=3, step="15min", seed=5)
    # a hole (a sensor down for two hours) and a city whose tables do not start together
    t = hub.tables["traffic"]
    hole = (t["sensor_id"] == t["sensor_id"].iloc[0]) & (t["ts"] >= t["ts"].min() + pd.Timedelta(hours=30))
    hub.tables["traffic"] = t[~(hole & (t["ts"] < t["ts"].min() + pd.Timedelta(hours=32)))].reset_index(drop=True)
    hub.tables["demand"] = hub.tables["demand"].iloc[40:].reset_index(drop=True)
    return hub


def at(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=TZ)


@pytest.mark.parametrize(
    ("table", "channels"), [("traffic", ["speed", "flow"]), ("demand", ["count"]), ("incidents", ["severity"])]
)
@pytest.mark.parametrize("span", ["all", "tail", "head", "middle", "off-grid"])
def test_the_same_values_as_slicing_the_whole_tensor(city, table, channels, span):
    first = city.table("traffic")["ts"].min().tz_convert(TZ)
    start, end = {
        "all": (None, None),
        "tail": (first + pd.Timedelta(hours=50), None),
        "head": (None, first + pd.Timedelta(hours=20)),
        "middle": (first + pd.Timedelta(hours=29), first + pd.Timedelta(hours=33)),
        "off-grid": (first + pd.Timedelta(hours=29, minutes=7), first + pd.Timedelta(hours=33, minutes=1)),
    }[span]
    want, want_nodes, want_ts = whole_then_sliced(city, table, channels, start, end)
    got, nodes = hub_values(city, table, channels, start=start, end=end)
    assert nodes == want_nodes
    assert list(got) == channels
    for c in channels:
        np.testing.assert_array_equal(got[c], want[c])  # NaN where the sensor was down, in the same places
    if table == "traffic" and span == "middle":
        assert np.isnan(got["speed"]).any()
    start_ts = None if start is None else pd.Timestamp(start)
    end_ts = None if end is None else pd.Timestamp(end)
    assert index_between(city, start_ts, end_ts).equals(want_ts)


def test_operating_hours_hub_and_a_span_with_no_rows_of_the_table():
    days = pd.date_range(at("2026-03-02"), periods=3, freq="D")
    slots = pd.DatetimeIndex([d + pd.Timedelta(hours=h) for d in days for h in range(6, 24)])  # 06:00–23:00
    traffic = pd.DataFrame({"sensor_id": "s0", "ts": slots, "speed": np.arange(len(slots), dtype=float)})
    weather = pd.DataFrame({"ts": slots, "temperature": 20.0})
    hub = Hub(
        {"traffic": traffic[traffic["ts"] < at("2026-03-03 12:00")], "weather": weather},
        HubMeta(step="1h", timezone=TZ, extra={"slots_per_day": 18, "first_slot": "06:00"}),
    )
    for start, end in [(at("2026-03-02 23:30"), at("2026-03-03 09:00")), (at("2026-03-04 07:00"), None)]:
        want, nodes, _ = whole_then_sliced(hub, "traffic", ["speed"], start, end)
        got, got_nodes = hub_values(hub, "traffic", ["speed"], start=start, end=end)
        assert got_nodes == nodes
        np.testing.assert_array_equal(got["speed"], want["speed"])
    assert np.isnan(got["speed"]).all() and len(got["speed"]) == 17  # the 4th of March: weather only
    assert hub_values(hub, "traffic", ["speed"], start=at("2026-03-03 00:00"))[0]["speed"][0, 0] == 18.0


def test_errors_name_the_span_and_the_column(city):
    with pytest.raises(HubError, match="has no steps between"):
        hub_values(city, "traffic", ["speed"], start="2030-01-01")
    with pytest.raises(HubError, match=r"table traffic has no column\(s\) \['speeed'\]"):
        hub_values(city, "traffic", ["speeed"])
    late = city.table("traffic")["ts"].max() + pd.Timedelta(minutes=1)
    empty = Hub({**city.tables, "demand": city.table("demand").iloc[:0]}, city.meta)
    with pytest.raises(HubError, match="table demand is empty"):
        hub_values(empty, "demand", ["count"], start=late - pd.Timedelta(hours=3))
