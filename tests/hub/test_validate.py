"""Validation finds each kind of problem, names where it is, and repairs nothing."""

import numpy as np
import pandas as pd
import pytest

from cityagent.hub import Hub
from cityagent.hub.validate import validate_hub
from tests.factories import tiny_hub


def test_tiny_hub_is_valid():
    report = validate_hub(tiny_hub())
    assert report.ok, str(report)
    assert report.tables["traffic"]["rows"] == 72


def _broken(table: str, change) -> tuple[Hub, pd.DataFrame]:
    hub = tiny_hub()
    df = hub.tables[table].copy()
    df = change(df)
    hub.tables[table] = df
    return hub, df.copy()


@pytest.mark.parametrize(
    ("table", "change", "fragment", "column"),
    [
        ("traffic", lambda d: d.drop(columns="speed"), "missing required column 'speed'", "speed"),
        ("traffic", lambda d: d.assign(colour="red"), "unexpected column 'colour'", "colour"),
        ("traffic", lambda d: d.assign(speed=d.speed.astype(str)), "must be numeric", "speed"),
        ("traffic", lambda d: d.assign(sensor_id=np.arange(len(d))), "must be strings", "sensor_id"),
        ("traffic", lambda d: d.assign(ts=d.ts.dt.tz_localize(None)), "timezone-naive", "ts"),
        ("traffic", lambda d: d.assign(speed=d.speed.where(d.index != 5)), "NaN/inf", "speed"),
        ("traffic", lambda d: d.assign(speed=d.speed.where(d.index != 6, np.inf)), "NaN/inf", "speed"),
        ("traffic", lambda d: d.assign(speed=d.speed.where(d.index != 6, -3.0)), "negative", "speed"),
        ("traffic", lambda d: pd.concat([d, d.iloc[[4]]], ignore_index=True), "duplicate", None),
        ("traffic", lambda d: d.iloc[[1, 0, *range(2, len(d))]].reset_index(drop=True), "go backwards", "ts"),
        (
            "traffic",
            lambda d: d.assign(ts=d.ts.where(d.index != 3, d.ts + pd.Timedelta("2min"))),
            "off the",
            "ts",
        ),
        (
            "traffic",
            lambda d: d.assign(sensor_id=d.sensor_id.where(d.index != 2, "ghost")),
            "missing from sensors",
            "sensor_id",
        ),
        ("edges", lambda d: d.assign(dst=["s1", "nowhere"]), "missing from sensors or zones", "dst"),
        ("zones", lambda d: d.assign(lat=[95.0, 22.5]), "outside", "lat"),
        (
            "zones",
            lambda d: d.drop(columns=["lat", "lon"]),
            "needs the columns (lat, lon) or (row, col)",
            None,
        ),
        ("incidents", lambda d: d.assign(cell_id=["z0", "z9"]), "missing from zones", "cell_id"),
    ],
)
def test_each_error_is_reported_and_nothing_repaired(table, change, fragment, column):
    hub, before = _broken(table, change)
    report = validate_hub(hub)
    assert not report.ok
    hits = report.find(table, fragment)
    assert hits, f"expected {fragment!r} in:\n{report}"
    assert hits[0].level == "error"
    assert hits[0].column == column
    pd.testing.assert_frame_equal(hub.tables[table], before)  # validation never repairs


def test_error_names_the_first_bad_row():
    hub, _ = _broken("traffic", lambda d: d.assign(speed=d.speed.where(~d.index.isin([7, 9]))))
    issue = validate_hub(hub).find("traffic", "NaN")[0]
    assert (issue.row, issue.count) == (7, 2)


def test_gaps_are_warnings_with_counts():
    hub, _ = _broken("traffic", lambda d: d.drop(index=[3, 4, 10]).reset_index(drop=True))
    report = validate_hub(hub)
    assert report.ok
    gap = report.find("traffic", "missing step")[0]
    assert gap.level == "warning" and gap.count == 3
    assert "2 gap(s)" in gap.message


def test_series_ending_early_counts_as_missing():
    hub, _ = _broken("traffic", lambda d: d.drop(index=[23]).reset_index(drop=True))  # s0's last reading
    gap = validate_hub(hub).find("traffic", "missing step")[0]
    assert gap.count == 1 and "1 at series ends" in gap.message


def test_operating_hours_hub_has_no_nightly_gaps():
    ts = pd.DatetimeIndex(
        [
            d + pd.Timedelta(hours=h)
            for d in pd.date_range("2016-08-01", periods=3, tz="Asia/Shanghai")
            for h in range(6, 24)
        ]
    )
    hub = Hub(
        {
            "demand": pd.DataFrame({"zone_id": "0", "ts": ts, "count": 1.0}),
            "zones": pd.DataFrame({"zone_id": ["0"], "lat": [29.5], "lon": [106.5]}),
        }
    )
    hub.meta.step, hub.meta.timezone = "1h", "Asia/Shanghai"
    hub.meta.extra.update(slots_per_day=18, first_slot="06:00")
    assert validate_hub(hub).issues == []
    hub.meta.extra.clear()
    assert validate_hub(hub).find("demand", "missing step")[0].count == 12  # two nights of 6 h


def test_bad_manifest_is_reported():
    hub = tiny_hub()
    hub.meta.step, hub.meta.timezone = "fortnightish", "Mars/Olympus"
    report = validate_hub(hub)
    assert report.find("hub.json", "not a pandas offset")
    assert report.find("hub.json", "not an IANA zone")


def test_missing_static_table_is_a_warning():
    hub = tiny_hub()
    del hub.tables["sensors"]
    hub.tables["edges"] = hub.tables["edges"].iloc[0:0]
    report = validate_hub(hub)
    assert report.find("traffic", "no sensors table")[0].level == "warning"
