"""Validation finds each kind of problem, names where it is, and repairs nothing."""

import numpy as np
import pandas as pd
import pytest

from cityagent.errors import HubError
from cityagent.hub import Hub, read_hub, write_hub
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
        ("traffic", lambda d: d.assign(speed=d.speed.where(d.index != 6, 1e9)), "outside [0, 300] km/h", "speed"),
        ("traffic", lambda d: d.assign(flow=d.flow.where(d.index != 2, 1e9)), "outside [0, 10,000,000]", "flow"),
        ("demand", lambda d: d.assign(count=d["count"].where(d.index != 1, 1e9)), "outside", "count"),
        ("demand", lambda d: d.assign(supply=-d["count"] - 1), "negative", "supply"),
        ("incidents", lambda d: d.assign(severity=[1.0, 1e12]), "outside", "severity"),
        ("weather", lambda d: d.assign(temperature=d.temperature + 273.15), "outside [-90, 60] °C", "temperature"),
        ("weather", lambda d: d.assign(precipitation=-1.0), "negative", "precipitation"),
        ("sensors", lambda d: d.assign(free_flow=[60.0, 400.0, 60.0]), "outside [0, 300] km/h", "free_flow"),
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


def test_out_of_range_error_names_the_first_value():
    hub, _ = _broken("traffic", lambda d: d.assign(speed=d.speed.where(~d.index.isin([4, 8]), 1e9)))
    issue = validate_hub(hub).find("traffic", "outside")[0]
    assert (issue.column, issue.row, issue.count) == ("speed", 4, 2)
    assert "(first 1e+09)" in issue.message and "traffic.speed at data row 5" in str(issue)


def test_csv_errors_name_the_file_line_and_the_key(tmp_path):
    write_hub(tiny_hub(), tmp_path / "hub", format="csv")
    path = tmp_path / "hub" / "traffic.csv"
    lines = path.read_text().splitlines()
    sensor, ts, _, flow = lines[49].split(",")  # file line 50 (1-based, line 1 is the header)
    lines[49] = f"{sensor},{ts},,{flow}"
    path.write_text("\n".join(lines) + "\n")
    issue = validate_hub(read_hub(tmp_path / "hub")).find("traffic", "NaN")[0]
    assert issue.row == 48  # 0-based position in the table, as read
    assert f"traffic.speed at data row 49 (line 50 of traffic.csv; sensor_id={sensor!r}, ts=" in str(issue)
    assert ts[:19] in str(issue)
    write_hub(read_hub(tmp_path / "hub"), tmp_path / "parquet")  # partitioned Parquet: rows, no lines
    issue = validate_hub(read_hub(tmp_path / "parquet")).find("traffic", "NaN")[0]
    assert f"(sensor_id={sensor!r}, ts=" in str(issue) and "line" not in str(issue)  # rows in date-partition order


def test_naive_timestamp_among_aware_ones_names_row_and_value(tmp_path):
    d = tmp_path / "city"
    d.mkdir()
    (d / "hub.json").write_text('{"name": "x", "step": "1h", "timezone": "Asia/Shanghai"}')
    (d / "traffic.csv").write_text(
        "sensor_id,ts,speed\na,2026-03-01T23:00:00+08:00,10\na,2026-03-02T00:00:00,11\na,2026-03-02T01:00:00+08:00,12\n"
    )
    issue = validate_hub(read_hub(d)).find("traffic", "without a UTC offset")[0]
    assert (issue.column, issue.row, issue.count) == ("ts", 1, None)
    assert "'2026-03-02T00:00:00'" in issue.message and "e.g. '2026-03-02T00:00:00+08:00'" in issue.message
    assert "at data row 2 (line 3 of traffic.csv; sensor_id='a')" in str(issue)


def test_naive_text_timestamps_take_the_hubs_offset_in_the_hint():
    hub = tiny_hub()
    hub.tables["weather"] = hub.tables["weather"].assign(ts=hub.tables["weather"].ts.dt.strftime("%Y-%m-%dT%H:%M"))
    issue = validate_hub(hub).find("weather", "without a UTC offset")[0]
    assert issue.row == 0 and "e.g. '2026-03-01T22:00+08:00'" in issue.message


def test_key_locates_rows_of_any_table():
    hub, _ = _broken("zones", lambda d: d.assign(lat=[22.5, 95.0]))
    issue = validate_hub(hub).find("zones", "outside")[0]
    assert issue.at == "zone_id='z1'" and str(issue).startswith(
        "ERROR zones.lat at data row 2 (line 3 if CSV; zone_id='z1')"
    )


def test_gaps_are_warnings_with_counts():
    hub, _ = _broken("traffic", lambda d: d.drop(index=[3, 4, 10]).reset_index(drop=True))
    report = validate_hub(hub)
    assert report.ok
    gap = report.find("traffic", "missing step")[0]
    assert gap.level == "warning" and gap.count == 3
    assert "3 missing step(s): 3 in 2 gap(s) inside series and 0 at series ends" in gap.message


def test_series_ending_early_counts_as_missing():
    hub, _ = _broken("traffic", lambda d: d.drop(index=[23]).reset_index(drop=True))  # s0's last reading
    gap = validate_hub(hub).find("traffic", "missing step")[0]
    assert gap.count == 1 and "1 missing step(s): 0 in 0 gap(s) inside series and 1 at series ends" in gap.message


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


def test_a_timezone_typo_in_memory_is_reported_as_in_hub_json(tmp_path):
    hub = tiny_hub()
    hub.meta.timezone = "Asia/Shangai"  # step valid: the timeline checks would read the zone
    report = validate_hub(hub)  # reports, never raises ZoneInfoNotFoundError
    assert [i.message for i in report.errors] == [
        "timezone 'Asia/Shangai' is not an IANA zone; did you mean 'Asia/Shanghai'?"
    ]
    for fmt in ("parquet", "csv"):
        with pytest.raises(HubError, match=r"timezone 'Asia/Shangai' is not an IANA zone; did you mean 'Asia/Sh"):
            write_hub(hub, tmp_path / fmt, format=fmt)
        assert not (tmp_path / fmt).exists()
    hub.meta.timezone = "Asia/Shanghai"
    write_hub(hub, tmp_path / "ok")
    manifest = tmp_path / "ok" / "hub.json"
    manifest.write_text(manifest.read_text().replace("Asia/Shanghai", "Asia/Shangai"))
    with pytest.raises(HubError, match=r"hub\.json: timezone 'Asia/Shangai' is not an IANA zone; did you mean"):
        read_hub(tmp_path / "ok")


def test_a_misspelled_table_name_suggests_the_table():
    hub = tiny_hub()
    with pytest.raises(HubError, match=r"this hub has no 'trafic' table \(it has: .*\); did you mean 'traffic'\?"):
        hub.table("trafic")
    del hub.tables["weather"]
    with pytest.raises(HubError, match=r"no 'Weather' table .*did you mean 'weather'\? \(this hub has none either"):
        hub.table("Weather")
    with pytest.raises(HubError, match=r"no 'decisions' table .*cityagent agent run"):  # absent, not misspelled
        hub.table("decisions")


def test_missing_static_table_is_a_warning():
    hub = tiny_hub()
    del hub.tables["sensors"]
    hub.tables["edges"] = hub.tables["edges"].iloc[0:0]
    report = validate_hub(hub)
    assert report.find("traffic", "no sensors table")[0].level == "warning"


def test_input_facts_keep_only_what_the_tasks_own_inputs_keep():
    import numpy as np

    from cityagent.hub.feature_facts import input_facts

    names = ["speed", "temperature", "tod", *[f"dow_{d}" for d in range(7)], "mystery"]
    x = np.zeros((4, 2, len(names)))
    x[..., 0], x[..., 1], x[..., 2], x[..., 3], x[..., -1] = 50.0, 20.0, 0.5, 1.0, -3.0
    x[0, 0, 0] = np.nan  # a missing reading does not count against the range
    facts = input_facts(names, x, "Asia/Shanghai")
    assert facts["input_ranges"] == {
        "speed": [0.0, 300.0],
        "temperature": [-90.0, 60.0],
        "tod": [0.0, 1.0],
        **{f"dow_{d}": [0.0, 1.0] for d in range(7)},
    }  # 'mystery' has no known range
    assert facts["one_hot"] == [[f"dow_{d}" for d in range(7)]] and facts["timezone"] == "Asia/Shanghai"
    x[1, 1, 3] = 0.0  # the data itself breaks the group (and a range below): no fact is recorded for them
    x[2, 1, 0] = 400.0
    facts = input_facts(names, x, None)
    assert facts["one_hot"] == [] and "speed" not in facts["input_ranges"] and facts["timezone"] is None
