"""Hub tables → [T, N, C] tensors: exact pivot, NaN for missing, imputation only when asked, calendar features."""

import logging

import numpy as np
import pandas as pd
import pytest

from cityagent.errors import ConfigError, HubError
from cityagent.hub import Hub, HubMeta
from cityagent.hub.calendar import calendar_features
from cityagent.hub.tensor import to_tensor
from tests.factories import tiny_hub


def test_pivot_places_every_row():
    hub = tiny_hub(sensors=3, steps=24)
    st = to_tensor(hub, "traffic", ["speed", "flow"])
    df = hub.table("traffic")
    assert st.values.shape == (24, 3, 2) and st.values.dtype == np.float32
    assert st.nodes == ["s0", "s1", "s2"] and st.channels == ["speed", "flow"]
    assert st.ts.equals(pd.date_range("2026-03-01 22:00", periods=24, freq="15min", tz="Asia/Shanghai"))
    ti = st.ts.get_indexer(df["ts"])
    ni = pd.Index(st.nodes).get_indexer(df["sensor_id"])
    np.testing.assert_array_equal(st.values[ti, ni, 0], df["speed"].to_numpy(np.float32))
    np.testing.assert_array_equal(st.channel("flow")[ti, ni], df["flow"].to_numpy(np.float32))
    assert st.observed.all()


def test_row_order_does_not_matter():
    hub = tiny_hub()
    shuffled = Hub({**hub.tables, "traffic": hub.table("traffic").sample(frac=1, random_state=1)}, hub.meta)
    np.testing.assert_array_equal(
        to_tensor(hub, "traffic", ["speed"]).values, to_tensor(shuffled, "traffic", ["speed"]).values
    )


def _without(hub: Hub, rows: list[int]) -> Hub:
    return Hub({**hub.tables, "traffic": hub.table("traffic").drop(index=rows)}, hub.meta)


def test_missing_readings_stay_nan_unless_imputed():
    hub = tiny_hub(sensors=2, steps=8)
    gappy = _without(hub, [1, 2, 8])  # s0 steps 1-2, s1 step 0
    st = to_tensor(gappy, "traffic", ["speed"])
    assert st.values.shape == (8, 2, 1)
    assert np.isnan(st.values[[1, 2], 0, 0]).all() and np.isnan(st.values[0, 1, 0])
    assert int((~st.observed).sum()) == 3
    full = to_tensor(hub, "traffic", ["speed"]).values
    kept = st.observed
    np.testing.assert_array_equal(st.values[kept], full[kept])


def test_impute_modes_fill_and_log(caplog):
    hub = _without(tiny_hub(sensors=2, steps=8), [1, 2, 8])
    raw = to_tensor(hub, "traffic", ["speed"]).values[:, :, 0]
    with caplog.at_level(logging.INFO, logger="cityagent.hub.tensor"):
        zero = to_tensor(hub, "traffic", ["speed"], impute="zero").values[:, :, 0]
    assert "imputed 3 of 3" in caplog.text
    assert zero[1, 0] == 0 and zero[0, 1] == 0
    ffill = to_tensor(hub, "traffic", ["speed"], impute="ffill").values[:, :, 0]
    assert ffill[1, 0] == ffill[2, 0] == raw[0, 0]
    assert np.isnan(ffill[0, 1])  # nothing before the first step to carry forward
    mean = to_tensor(hub, "traffic", ["speed"], impute="mean").values[:, :, 0]
    assert mean[1, 0] == pytest.approx(np.nanmean(raw[:, 0]), rel=1e-6)
    with pytest.raises(ConfigError, match="impute"):
        to_tensor(hub, "traffic", ["speed"], impute="linear")


def test_unknown_nodes_and_bad_rows_are_errors():
    hub = tiny_hub(sensors=3)
    with pytest.raises(HubError, match="outside the node list"):
        to_tensor(hub, "traffic", ["speed"], nodes=["s0", "s1"])
    sensors = hub.table("sensors").iloc[:2]
    with pytest.raises(HubError, match=r"1 row|8 row|\d+ row"):
        to_tensor(Hub({**hub.tables, "sensors": sensors}, hub.meta), "traffic", ["speed"])
    traffic = hub.table("traffic").copy()
    traffic.loc[0, "ts"] += pd.Timedelta("7min")
    with pytest.raises(HubError, match="off the 15min grid"):
        to_tensor(Hub({**hub.tables, "traffic": traffic}, hub.meta), "traffic", ["speed"])
    dup = pd.concat([hub.table("traffic"), hub.table("traffic").iloc[:1]])
    with pytest.raises(HubError, match="several rows"):
        to_tensor(Hub({**hub.tables, "traffic": dup}, hub.meta), "traffic", ["speed"])
    with pytest.raises(HubError, match="no column"):
        to_tensor(hub, "traffic", ["occupancy"])


def test_incidents_sum_per_cell_and_step_with_zero_elsewhere():
    hub = tiny_hub(zones=2, steps=8)  # its own incidents are replaced below
    ts = pd.DatetimeIndex(hub.table("demand")["ts"].drop_duplicates().sort_values())
    incidents = pd.DataFrame(
        {
            "ts": [ts[3], ts[3] + pd.Timedelta("5min"), ts[5]],  # two in one step, one mid-step
            "cell_id": ["z0", "z0", "z1"],
            "severity": [1.0, 2.0, 4.0],
        }
    )
    hub = Hub({**hub.tables, "incidents": incidents}, hub.meta)
    st = to_tensor(hub, "incidents", ["severity"])
    assert st.values.shape == (8, 2, 1) and st.observed.all()
    assert st.values[3, 0, 0] == 3.0 and st.values[5, 1, 0] == 4.0
    assert st.values.sum() == 7.0


def test_operating_hours_hub_has_only_open_slots():
    ts = pd.DatetimeIndex([f"2026-03-0{d} {h:02d}:00" for d in (1, 2) for h in (6, 7, 8)]).tz_localize("Asia/Shanghai")
    demand = pd.DataFrame({"zone_id": "a", "ts": ts, "count": np.arange(6.0)})
    meta = HubMeta(step="1h", timezone="Asia/Shanghai", extra={"slots_per_day": 3, "first_slot": "06:00"})
    st = to_tensor(Hub({"demand": demand}, meta), "demand", ["count"])
    assert st.ts.equals(ts) and st.observed.all()
    np.testing.assert_array_equal(st.values[:, 0, 0], np.arange(6.0))


def test_weather_is_one_city_node():
    st = to_tensor(tiny_hub(steps=9), "weather", ["temperature"])
    assert st.nodes == ["city"] and st.values.shape == (9, 1, 1)


def test_calendar_features_in_local_time():
    ts = pd.date_range("2026-03-01 22:00", periods=4, freq="1h", tz="Asia/Shanghai")  # a Sunday
    feats, names = calendar_features(
        ts, ("tod", "dow", "dow_index", "hour", "holiday", "weekend"), holidays=["2026-03-02"]
    )
    assert feats.shape == (4, 1 + 7 + 1 + 24 + 1 + 1) and len(names) == feats.shape[1]
    col = {n: feats[:, i] for i, n in enumerate(names)}
    np.testing.assert_allclose(col["tod"], [22 / 24, 23 / 24, 0, 1 / 24])
    assert (feats[:, 1:8].sum(axis=1) == 1).all()
    np.testing.assert_array_equal(col["dow_index"], [6, 6, 0, 0])
    np.testing.assert_array_equal(col["dow_6"], [1, 1, 0, 0])
    np.testing.assert_array_equal(col["holiday"], [0, 0, 1, 1])
    np.testing.assert_array_equal(col["weekend"], [1, 1, 0, 0])
    assert col["hour_23"][1] == 1 and (0 <= col["tod"]).all() and (col["tod"] < 1).all()
    with pytest.raises(ConfigError, match="unknown calendar"):
        calendar_features(ts, ("moon",))
