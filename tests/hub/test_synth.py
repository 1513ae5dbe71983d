"""The synthetic city: determinism, shapes, id consistency, plausible dynamics, and atomic Parquet output."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph

from cityagent.errors import ConfigError, HubError
from cityagent.hub.hub import Hub
from cityagent.hub.synth import SynthParams, synth_hub, synthesize
from cityagent.hub.synth import writer as synth_writer

TEMPORAL = ("traffic", "demand", "incidents", "weather")
SMALL = dict(sensors=24, zones=6, days=2, step="15min", seed=3)


@pytest.fixture(scope="module")
def small() -> Hub:
    return synth_hub(**SMALL)


@pytest.fixture(scope="module")
def medium() -> Hub:
    """Four weeks of a 300-segment city with more rain and accidents than usual, for the statistics."""
    params = SynthParams(accident_rate=2e-3, rain_per_day=3.0)
    return synth_hub(sensors=300, zones=16, days=28, seed=7, params=params)


def speed_ratio(hub: Hub) -> pd.DataFrame:
    """Traffic with speed / free_flow, local hour and weekday flag."""
    traffic = hub.tables["traffic"]
    free = hub.tables["sensors"].set_index("sensor_id")["free_flow"]
    return traffic.assign(
        ratio=traffic["speed"].to_numpy() / free.reindex(traffic["sensor_id"]).to_numpy(),
        hour=traffic["ts"].dt.hour,
        weekday=traffic["ts"].dt.day_of_week < 5,
    )


def read_back(root: Path) -> dict[str, pd.DataFrame]:
    """Every table of a synthesised hub, read with pyarrow alone (partitions in date order)."""
    tables = {name: pq.read_table(root / f"{name}.parquet").to_pandas() for name in ("sensors", "zones", "edges")}
    for name in TEMPORAL:
        files = sorted((root / name).glob("date=*/part-0.parquet"))
        tables[name] = pa.concat_tables([pq.read_table(f) for f in files]).to_pandas()
    return tables


def test_same_seed_same_city_other_seed_other_city(small: Hub) -> None:
    again = synth_hub(**SMALL)
    for name, df in small.tables.items():
        pd.testing.assert_frame_equal(df, again.tables[name])
    assert again.meta == small.meta
    other = synth_hub(**{**SMALL, "seed": 4})
    assert not np.array_equal(other.tables["traffic"]["speed"], small.tables["traffic"]["speed"])
    assert not np.array_equal(other.tables["sensors"]["lat"], small.tables["sensors"]["lat"])
    assert not np.array_equal(other.tables["demand"]["count"], small.tables["demand"]["count"])


def test_days_are_reproducible_as_a_prefix(small: Hub) -> None:
    one_day = synth_hub(**{**SMALL, "days": 1})
    for name in TEMPORAL:
        first = small.tables[name][small.tables[name]["ts"] < pd.Timestamp("2026-03-03", tz="Asia/Shanghai")]
        pd.testing.assert_frame_equal(one_day.tables[name], first.reset_index(drop=True))


def test_shapes_types_and_manifest(small: Hub) -> None:
    steps = 2 * 96  # two days of 15 minutes
    t = small.tables
    assert len(t["sensors"]) == 24 and len(t["zones"]) == 6
    assert len(t["traffic"]) == 24 * steps and len(t["demand"]) == 6 * steps and len(t["weather"]) == steps
    rows, cols = small.meta.extra["grid"]
    assert rows * cols == 6 and t["zones"]["row"].max() == rows - 1 and t["zones"]["col"].max() == cols - 1
    assert (small.meta.name, small.meta.step, small.meta.timezone) == ("synthetic", "15min", "Asia/Shanghai")
    assert small.meta.source == "cityagent synth seed=3"
    assert small.meta.extra["generator"]["sensors"] == 24
    json.dumps(small.meta.to_dict())  # the manifest must serialise
    for name in TEMPORAL:
        assert str(t[name]["ts"].dtype) == "datetime64[ns, Asia/Shanghai]"
    ts = t["weather"]["ts"]
    assert ts.iloc[0] == pd.Timestamp("2026-03-02 00:00", tz="Asia/Shanghai")
    assert (ts.diff().dropna() == pd.Timedelta("15min")).all()
    for col in ("speed", "flow"):
        assert t["traffic"][col].dtype == np.float64 and np.isfinite(t["traffic"][col]).all()
    for col in ("count", "supply"):
        values = t["demand"][col]
        assert values.dtype == np.float64 and (values >= 0).all() and (values == np.round(values)).all()
    assert t["zones"]["row"].dtype == np.int64
    assert t["sensors"]["sensor_id"].map(type).eq(str).all()
    # rows by ts then id: the whole table is sorted by its key in time order
    assert t["traffic"]["ts"].is_monotonic_increasing
    assert t["traffic"]["sensor_id"].iloc[:24].tolist() == t["sensors"]["sensor_id"].tolist()


def test_speeds_stay_in_a_sane_range(medium: Hub) -> None:
    traffic = speed_ratio(medium)
    assert traffic["speed"].min() >= 3.0 and traffic["ratio"].max() <= 1.16
    assert traffic["flow"].min() >= 0 and not traffic.isna().any().any()
    lat, lon = medium.tables["sensors"]["lat"], medium.tables["sensors"]["lon"]
    assert abs(lat.mean() - 22.54) < 0.05 and abs(lon.mean() - 114.05) < 0.05


def test_ids_agree_across_tables(small: Hub) -> None:
    t = small.tables
    sensors, zones = set(t["sensors"]["sensor_id"]), set(t["zones"]["zone_id"])
    assert set(t["traffic"]["sensor_id"]) == sensors and set(t["demand"]["zone_id"]) == zones
    edges = t["edges"]
    road, nb = edges[edges["kind"] == "road"], edges[edges["kind"] == "neighbor"]
    assert len(road) + len(nb) == len(edges)
    assert set(road["src"]) | set(road["dst"]) <= sensors and set(nb["src"]) | set(nb["dst"]) <= zones
    for part in (road, nb):  # directed both ways
        pairs = set(zip(part["src"], part["dst"], strict=True))
        assert pairs == {(b, a) for a, b in pairs} and not any(a == b for a, b in pairs)
    assert not edges.duplicated(["src", "dst", "kind"]).any()
    assert set(t["incidents"]["cell_id"]) <= zones


def test_road_graph_is_connected(medium: Hub) -> None:
    ids = medium.tables["sensors"]["sensor_id"]
    pos = pd.Series(np.arange(len(ids)), index=ids)
    road = medium.tables["edges"].query("kind == 'road'")
    adj = sp.coo_matrix((np.ones(len(road)), (pos[road["src"]], pos[road["dst"]])), shape=(len(ids), len(ids)))
    assert csgraph.connected_components(adj, directed=False)[0] == 1


def test_weekday_rush_hour_is_slower_than_night_and_weekend(medium: Hub) -> None:
    traffic = speed_ratio(medium)
    by_hour = traffic.groupby(["weekday", "hour"])["speed"].mean()
    assert by_hour[(True, 8)] < 0.9 * by_hour[(True, 3)]
    assert by_hour[(True, 18)] < 0.9 * by_hour[(True, 3)]
    assert by_hour[(True, 8)] < by_hour[(False, 8)]  # weekend mornings are lighter


def test_rain_lowers_speeds() -> None:
    """Same seed with and without rain: only the weather stream changes, so speeds pair step by step."""
    kwargs = dict(sensors=100, zones=4, days=7, seed=11)
    wet = synth_hub(**kwargs, params=SynthParams(rain_per_day=4.0))
    dry = synth_hub(**kwargs, params=SynthParams(rain_per_day=0.0))
    assert (dry.tables["weather"]["precipitation"] == 0).all()
    raining = wet.tables["traffic"]["ts"].isin(wet.tables["weather"].query("precipitation > 0")["ts"])
    assert raining.mean() > 0.05
    wet_speed, dry_speed = wet.tables["traffic"]["speed"][raining], dry.tables["traffic"]["speed"][raining]
    assert wet_speed.mean() < 0.93 * dry_speed.mean()
    assert (wet.tables["traffic"]["speed"][~raining].mean() - dry.tables["traffic"]["speed"][~raining].mean()) < 1.0


def test_accidents_rise_with_congestion_rain_and_night(medium: Hub) -> None:
    traffic = speed_ratio(medium)
    steps = traffic.groupby("ts").agg(ratio=("ratio", "mean"), hour=("hour", "first"))
    weather = medium.tables["weather"].set_index("ts")
    steps["rain"] = weather["precipitation"].reindex(steps.index) > 0
    steps["accidents"] = medium.tables["incidents"]["ts"].value_counts().reindex(steps.index, fill_value=0)
    n = len(medium.tables["sensors"])
    assert steps["accidents"].sum() > 300

    def rate(mask: pd.Series) -> float:  # accidents per segment-hour
        return steps.loc[mask, "accidents"].sum() / (mask.sum() * n / 12)

    day = steps["hour"].between(6, 21)
    dry_day = day & ~steps["rain"]
    jammed = steps["ratio"] < steps.loc[dry_day, "ratio"].quantile(0.2)
    assert rate(dry_day & jammed) > 1.5 * rate(dry_day & ~jammed)
    assert rate(day & steps["rain"]) > 1.5 * rate(dry_day)
    night = ~day & ~steps["rain"]
    assert rate(night) > 1.5 * rate(dry_day & ~jammed)
    incidents = medium.tables["incidents"]
    assert set(incidents["kind"]) == {"accident"} and incidents["severity"].between(1, 3).all()


def test_demand_follows_zone_kind_and_weekday(medium: Hub) -> None:
    demand = medium.tables["demand"].merge(medium.tables["zones"][["zone_id", "name"]], on="zone_id")
    demand["kind"] = demand["name"].str.split(" ").str[0]
    demand["hour"], demand["weekday"] = demand["ts"].dt.hour, demand["ts"].dt.day_of_week < 5
    morning = demand[demand["weekday"] & demand["hour"].between(7, 8)].groupby("kind")[["count", "supply"]].sum()
    assert morning.loc["residential", "count"] > 1.5 * morning.loc["residential", "supply"]
    assert morning.loc["business", "supply"] > 1.5 * morning.loc["business", "count"]
    home = demand[demand["kind"] == "residential"]
    peak = home[home["hour"] == 8].groupby("weekday")["count"].mean()
    assert peak[True] > 1.5 * peak[False]


def test_weather_is_consistent(medium: Hub) -> None:
    w = medium.tables["weather"]
    assert ((w["condition"] == "rain") == (w["precipitation"] >= 0.1)).all()
    assert set(w["condition"]) <= {"clear", "cloudy", "rain"} and w["temperature"].between(0, 40).all()
    by_hour = w.groupby(w["ts"].dt.hour)["temperature"].mean()
    assert by_hour[14] > by_hour[5] + 2


def test_synthesize_writes_the_same_values_as_synth_hub(tmp_path: Path, small: Hub) -> None:
    out = synthesize(tmp_path / "hub", **SMALL, progress=False)
    assert json.loads((out / "hub.json").read_text()) == small.meta.to_dict()
    assert sorted(p.name for p in (out / "traffic").iterdir()) == ["date=2026-03-02", "date=2026-03-03"]
    schema = pq.read_schema(out / "traffic" / "date=2026-03-02" / "part-0.parquet")
    assert schema.field("ts").type == pa.timestamp("ns", tz="Asia/Shanghai")
    for name, df in read_back(out).items():
        pd.testing.assert_frame_equal(df, small.tables[name], obj=name)
    assert [p.name for p in tmp_path.iterdir()] == ["hub"]  # no temporary sibling left behind


def test_synthesized_hub_validates(tmp_path: Path, small: Hub) -> None:
    from cityagent.hub.io import read_hub
    from cityagent.hub.validate import validate_hub

    report = validate_hub(small)
    assert report.ok, report.issues
    report = validate_hub(read_hub(synthesize(tmp_path / "hub", **SMALL, progress=False)))
    assert report.ok, report.issues


def _fail_on_second_day(monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = synth_writer.write_day, []

    def flaky(root: Path, chunk: object) -> None:
        calls.append(chunk)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        real(root, chunk)

    monkeypatch.setattr(synth_writer, "write_day", flaky)


def test_interrupted_run_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_on_second_day(monkeypatch)
    with pytest.raises(RuntimeError, match="disk full"):
        synthesize(tmp_path / "hub", **{**SMALL, "days": 3}, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_run_keeps_the_old_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = synthesize(tmp_path / "hub", **SMALL, progress=False)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    _fail_on_second_day(monkeypatch)
    with pytest.raises(RuntimeError, match="disk full"):
        synthesize(out, **{**SMALL, "seed": 9, "days": 3}, progress=False)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and [p.name for p in tmp_path.iterdir()] == ["hub"]


def test_replaces_an_existing_hub(tmp_path: Path) -> None:
    out = synthesize(tmp_path / "hub", **SMALL, progress=False)
    synthesize(out, **{**SMALL, "seed": 9, "days": 1}, progress=False)
    assert json.loads((out / "hub.json").read_text())["source"] == "cityagent synth seed=9"
    assert sorted(p.name for p in (out / "traffic").iterdir()) == ["date=2026-03-02"]
    assert [p.name for p in tmp_path.iterdir()] == ["hub"]


def test_refuses_to_overwrite_what_is_not_a_hub(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(HubError, match="not a hub"):
        synthesize(tmp_path / "notes", **SMALL, progress=False)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(HubError, match="is a file"):
        synthesize(tmp_path / "file", **SMALL, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "notes"]
    (tmp_path / "empty").mkdir()
    synthesize(tmp_path / "empty", **SMALL, progress=False)  # an empty directory is fine
    assert (tmp_path / "empty" / "hub.json").is_file()


@pytest.mark.parametrize(
    "bad",
    [{"sensors": 2}, {"zones": 0}, {"days": 0}, {"seed": -1}, {"step": "7min"}, {"step": "soon"}, {"start": "March"}],
)
def test_bad_arguments_say_what_to_do(bad: dict) -> None:
    with pytest.raises(ConfigError, match="synthetic city"):
        synth_hub(**{**SMALL, **bad})
