"""Importers of the public datasets in ../shared/data: shapes, totals, exact values, errors, validation."""

import importlib.util
import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cityagent.errors import ConfigError, HubError
from cityagent.hub.hub import Hub
from cityagent.hub.importers import IMPORTERS, gsnet_tensor, import_dataset
from cityagent.hub.importers.datasets import DATASETS, import_known, known_dataset, shared_data_dir

DATA = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"public datasets not found at {DATA}")
SZ = DATA / "traffic" / "sz_taxi"
SPEED, ADJ = SZ / "sz_speed_first40roads.csv", SZ / "sz_adj.csv"
CHICAGO = DATA / "risk" / "gsnet_chicago"
JONAS = DATA / "demand" / "jonas_eastnet"
HAS_VALIDATE = importlib.util.find_spec("cityagent.hub.validate") is not None


@pytest.fixture(scope="module")
def hubs() -> dict[str, Hub]:
    """Each known dataset imported once per module (imports are deterministic)."""

    class Lazy(dict):
        def __missing__(self, name: str) -> Hub:
            self[name] = import_known(name, data_dir=DATA)
            return self[name]

    return Lazy()


def uctb_pickle(name: str) -> dict:
    with tarfile.open(DATA / "demand" / name) as tf:
        return pickle.load(tf.extractfile(tf.getmembers()[0]))


def dense(df: pd.DataFrame, id_col: str, value: str, ids: list[str]) -> np.ndarray:
    """``[T, N]`` from a long table, NaN where a row is absent."""
    return df.pivot(index="ts", columns=id_col, values=value).reindex(columns=ids).to_numpy()


# --- T-GCN CSV (SZ-taxi) ---------------------------------------------------------------------------------


def test_sz_taxi_speeds_equal_the_csv_without_the_zero_readings(hubs):
    hub = hubs["sz-taxi"]
    src = pd.read_csv(SPEED)
    ids = list(src.columns[1:])
    values = src[ids].to_numpy()
    traffic = hub.table("traffic")
    assert hub.table("sensors")["sensor_id"].tolist() == ids
    assert len(traffic) == 40 * 2976 - int((values == 0).sum()) == 111_748
    assert hub.meta.extra["missing_readings"] == 7_292 and hub.meta.extra["zeros_as_missing"] is True
    got = dense(traffic, "sensor_id", "speed", ids)  # [2976, 40]
    assert np.array_equal(np.nan_to_num(got), values)
    assert traffic["ts"].iloc[0] == pd.Timestamp("2015-01-01 00:00", tz="Asia/Shanghai")
    assert traffic["ts"].iloc[-1] == pd.Timestamp("2015-01-31 23:45", tz="Asia/Shanghai")
    assert (hub.meta.step, hub.meta.timezone) == ("15min", "Asia/Shanghai")


def test_sz_taxi_graph_weather_and_poi_come_from_their_files(hubs):
    hub = hubs["sz-taxi"]
    ids = hub.table("sensors")["sensor_id"].tolist()
    adj = np.loadtxt(ADJ, delimiter=",")[:40, :40]
    edges = hub.table("edges")
    assert len(edges) == int((adj != 0).sum()) == 95 and set(edges["kind"]) == {"road"}
    rebuilt = np.zeros((40, 40))
    rebuilt[[ids.index(s) for s in edges["src"]], [ids.index(d) for d in edges["dst"]]] = edges["weight"]
    assert np.array_equal(rebuilt, adj)  # directed: not symmetrised
    codes = np.loadtxt(SZ / "sz_weather.csv", delimiter=",", dtype=int)[:, 0]
    assert hub.table("weather")["condition"].tolist() == [f"w{c}" for c in codes]
    poi = np.loadtxt(SZ / "sz_poi.csv", delimiter=",", dtype=int)[:40, 0]
    assert hub.meta.extra["poi_category"] == dict(zip(ids, poi.tolist(), strict=True))


def test_sz_taxi_zeros_kept_as_readings_when_asked():
    hub = import_dataset("tgcn-csv", SPEED, zeros_missing=False)
    assert len(hub.table("traffic")) == 40 * 2976
    assert (hub.table("traffic")["speed"] == 0).sum() == 7_292
    assert hub.meta.extra["zeros_as_missing"] is False and hub.meta.extra["missing_readings"] == 0


def test_headerless_matrix_needs_start_and_gets_index_ids(tmp_path):
    values = pd.read_csv(SPEED).iloc[:96, 1:6]
    plain = tmp_path / "speed.csv"
    values.to_csv(plain, header=False, index=False)
    with pytest.raises(ConfigError, match="start="):
        import_dataset("tgcn-csv", plain)
    hub = import_dataset("tgcn-csv", plain, start="2015-01-01 00:00")
    assert hub.table("sensors")["sensor_id"].tolist() == ["0", "1", "2", "3", "4"]
    got = dense(hub.table("traffic"), "sensor_id", "speed", ["0", "1", "2", "3", "4"])
    assert np.array_equal(np.nan_to_num(got), values.to_numpy())
    headed = tmp_path / "headed.csv"
    values.to_csv(headed, index=False)  # header of road ids, no date column
    assert import_dataset("tgcn-csv", headed, start="2015-01-01").table("sensors")["sensor_id"].tolist() == list(
        values.columns
    )


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ("sz_adj.csv", r"looks like an adjacency matrix \(156×156, every value 0 or 1\).* as --adj .*sz_adj\.csv"),
        ("sz_weather.csv", r"looks like AST-GCN weather codes .* as --set weather=.*sz_weather\.csv"),
        ("sz_poi.csv", r"looks like AST-GCN POI codes .* as --set poi=.*sz_poi\.csv"),
    ],
)
@pytest.mark.parametrize("start", [None, "2015-01-01"])
def test_a_side_file_passed_as_the_speed_csv_is_refused(file, message, start):
    # following "pass start=" used to import the adjacency or the weather codes as road speeds
    options = {"start": start} if start else {}
    with pytest.raises(HubError, match=message) as e:
        import_dataset("tgcn-csv", SZ / file, **options)
    assert "e.g. sz_speed.csv" in str(e.value)


def test_a_headerless_file_without_start_says_it_has_no_header_of_road_ids(tmp_path):
    plain = tmp_path / "speed.csv"
    pd.read_csv(SPEED).iloc[:8, 1:4].to_csv(plain, header=False, index=False)
    with pytest.raises(ConfigError, match=r"no header row of road ids .*pass the speed CSV, or.*pass start="):
        import_dataset("tgcn-csv", plain)


def test_text_options_become_the_importers_types():
    # `--set zeros_missing=false` used to arrive as the truthy string "false" and drop the zeros anyway
    assert len(import_dataset("tgcn-csv", SPEED, zeros_missing="false").table("traffic")) == 40 * 2976
    assert import_dataset("tgcn-csv", SPEED, header="auto").table("sensors")["sensor_id"].iloc[0] == "90217"
    with pytest.raises(ConfigError, match=r"option zeros_missing='maybe' must be true or false"):
        import_dataset("tgcn-csv", SPEED, zeros_missing="maybe")
    with pytest.raises(ConfigError, match=r"option grid='twenty' must be a whole number"):
        import_dataset("gsnet", CHICAGO / "chicago_20x20_derived.npz", grid="twenty")


@pytest.mark.parametrize(
    ("adj_rows", "message"),
    [
        (["0,1", "1,0"], "2×2 but the speed matrix has 5 roads"),
        (["0,1,0,0,0,0"] * 5, "5×6"),
    ],
)
def test_wrong_adjacency_is_a_clear_error(tmp_path, adj_rows, message):
    speed = tmp_path / "speed.csv"
    pd.read_csv(SPEED).iloc[:8, :6].to_csv(speed, index=False)
    adj = tmp_path / "adj.csv"
    adj.write_text("\n".join(adj_rows) + "\n")
    with pytest.raises(HubError, match=message):
        import_dataset("tgcn-csv", speed, adj=adj)


def test_bad_cell_and_bad_dates_name_the_row(tmp_path):
    df = pd.read_csv(SPEED).iloc[:8, :4].astype(str)
    df.iloc[3, 2] = "n/a"
    bad = tmp_path / "bad.csv"
    df.to_csv(bad, index=False)
    with pytest.raises(HubError, match=r"row 5, column 2 holds 'n/a'"):
        import_dataset("tgcn-csv", bad)
    df = pd.read_csv(SPEED).iloc[:8, :4]
    df.loc[4, "date"] = "1/1/2015 9:00"
    bad.write_text(df.to_csv(index=False))
    with pytest.raises(HubError, match="row 6 date"):
        import_dataset("tgcn-csv", bad)


# --- UCTB -------------------------------------------------------------------------------------------------


def test_didi_xian_counts_grid_and_graphs(hubs):
    hub, src = hubs["didi-xian"], uctb_pickle("uctb_didi/DiDi_Xian.tar.gz")
    node = src["Node"]["TrafficNode"]  # [1440, 256]
    ids = [str(i) for i in range(256)]
    demand = hub.table("demand")
    assert len(demand) == 1440 * 256 and demand["count"].dtype == np.float64
    assert demand["count"].sum() == 5_922_961
    assert np.array_equal(dense(demand, "zone_id", "count", ids), node)
    zones = hub.table("zones")
    grid = src["Grid"]["TrafficGrid"]
    assert np.array_equal(grid[:, zones["row"], zones["col"]], node)  # row/col place every cell
    assert zones["lat"].iloc[112] == src["Node"]["StationInfo"]["112"][1]
    edges = hub.table("edges")
    inter = edges[edges["kind"] == "interaction"]
    assert inter["weight"].sum() == src["Node"]["TrafficMonthlyInteraction"].sum()
    assert (edges["kind"] == "neighbor").sum() == 2 * (2 * 16 * 15)
    assert demand["ts"].iloc[0] == pd.Timestamp("2016-10-01", tz="Asia/Shanghai")
    assert demand["ts"].iloc[-1] == pd.Timestamp("2016-11-29 23:00", tz="Asia/Shanghai")


def test_metro_chongqing_operating_hours_and_graphs(hubs):
    hub, src = hubs["metro-chongqing"], uctb_pickle("uctb_metro/Metro_Chongqing.tar.gz")
    node = src["Node"]["TrafficNode"]
    assert node.shape == (6570, 113)
    ids = [str(i) for i in range(113)]
    demand = hub.table("demand")
    assert demand["count"].sum() == 409_277_117
    assert np.array_equal(dense(demand, "zone_id", "count", ids), node)
    extra = hub.meta.extra
    assert (extra["slots_per_day"], extra["first_slot"], hub.meta.step) == (18, "06:00", "1h")
    hours = demand["ts"].drop_duplicates().dt.hour
    assert hours.min() == 6 and hours.max() == 23 and len(hours) == 6570
    kinds = hub.table("edges")["kind"].value_counts().to_dict()
    assert kinds == {"line": int(src["contribute_data"]["graph_lines"].sum()), "neighbor": 232}
    assert hub.table("zones")["name"].iloc[0] == src["Node"]["StationInfo"]["0"][3]
    assert extra["station_codes"]["0"] == src["Node"]["StationInfo"]["0"][0]


def test_metro_shanghai_versions(hubs):
    v1, full = hubs["metro-shanghai"], hubs["metro-shanghai-full"]
    assert v1.table("demand")["count"].sum() == 333_149_034
    assert len(v1.table("demand")) == 1368 * 288 and len(full.table("demand")) == 1656 * 288
    head = full.table("demand").iloc[: 1368 * 288].reset_index(drop=True)
    pd.testing.assert_frame_equal(head, v1.table("demand"))


def test_uctb_missing_and_corrupt_archives(tmp_path):
    with pytest.raises(HubError, match="does not exist"):
        import_dataset("uctb", tmp_path / "nope.tar.gz")
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(HubError, match=r"not a readable tar\.gz"):
        import_dataset("uctb", garbage)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes((DATA / "demand/uctb_metro/Metro_ShanghaiV1.tar.gz").read_bytes()[:200_000])
    with pytest.raises(HubError, match=r"cut\.tar\.gz"):
        import_dataset("uctb", cut)


def test_uctb_refuses_pickles_that_would_run_code(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    payload = pickle.dumps(print)  # a global outside the numpy allow-list
    with tarfile.open(evil, "w:gz") as tf:
        info = tarfile.TarInfo("evil.pkl")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    with pytest.raises(HubError, match="not allowed"):
        import_dataset("uctb", evil)


# --- GSNet (Chicago risk) ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chicago_npz() -> dict[str, np.ndarray]:
    with np.load(CHICAGO / "chicago_20x20_derived.npz") as z:
        return {k: z[k] for k in z.files}


def test_chicago_tables_match_the_tensor(hubs, chicago_npz):
    hub, x = hubs["chicago-risk"], chicago_npz["all_data"]
    inc = hub.table("incidents")
    assert inc["severity"].sum() == 28_043 and len(inc) == 25_205 and set(inc["kind"]) == {"risk"}
    zones = hub.table("zones")
    assert len(zones) == 400 and zones["risk_mask"].sum() == 50 and zones["zone_id"].iloc[77] == "r03c17"
    extra = hub.meta.extra
    assert len(extra["graph_nodes"]) == 197 and extra["holidays"] == [
        "2016-02-15",
        "2016-05-30",
        "2016-07-04",
        "2016-09-05",
    ]
    kinds = hub.table("edges")["kind"].value_counts().to_dict()
    assert kinds == {k: int((chicago_npz[f"{k}_adj"] != 0).sum()) for k in ("risk", "road", "sum")}
    demand = hub.table("demand")
    ids = zones["zone_id"].tolist()
    assert np.array_equal(dense(demand, "zone_id", "count", ids), x[:, 40].reshape(5832, 400))
    assert np.array_equal(dense(demand, "zone_id", "supply", ids), x[:, 39].reshape(5832, 400))
    kelvin = (hub.table("weather")["temperature"].to_numpy() + 273.15).astype(np.float32)
    assert np.array_equal(kelvin, x[:, 33, 0, 0])
    assert demand["ts"].iloc[0] == pd.Timestamp("2016-02-01 00:00", tz="Etc/GMT+6")
    assert demand["ts"].iloc[0].day_name() == "Monday"


def test_gsnet_tensor_rebuilds_all_41_channels(hubs, chicago_npz):
    rebuilt = gsnet_tensor(hubs["chicago-risk"])
    assert rebuilt.dtype == np.float32
    assert np.array_equal(rebuilt, chicago_npz["all_data"])


def test_gsnet_from_the_original_zip_small_grid():
    hub = import_dataset("gsnet", CHICAGO / "chicago.zip", grid=5)
    with zipfile.ZipFile(CHICAGO / "chicago.zip") as zf:
        x = pickle.loads(zf.read("chicago/all_data_5_5.pkl"))
    assert hub.meta.extra["grid"] == [5, 5] and len(hub.meta.extra["graph_nodes"]) == 24
    assert np.array_equal(gsnet_tensor(hub), x)
    with pytest.raises(HubError, match=r"channel\(s\) \[33\] differ between cells"):
        import_dataset("gsnet", CHICAGO / "chicago.zip", grid=2)  # its temperature varies by cell


def test_gsnet_zip_equals_derived_npz(hubs):
    from_zip = import_dataset("gsnet", CHICAGO / "chicago.zip")
    for name in ("demand", "incidents", "weather", "zones", "edges"):
        pd.testing.assert_frame_equal(from_zip.table(name), hubs["chicago-risk"].table(name))


def test_gsnet_errors(tmp_path):
    with pytest.raises(HubError, match="does not exist"):
        import_dataset("gsnet", tmp_path / "chicago.zip")
    bad = tmp_path / "chicago.zip"
    bad.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(HubError, match="not a readable GSNet"):
        import_dataset("gsnet", bad)
    with pytest.raises(HubError, match=r"has no member chicago/all_data_7_7\.pkl"):
        import_dataset("gsnet", CHICAGO / "chicago.zip", grid=7)


# --- JONAS / EAST-Net -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "file", "mode", "shape", "step", "excluded"),
    [
        ("jonas-nyc", "JONAS-NYC-16x8-20151024-20160131.npz", "taxi", (4800, 16, 8), "30min", 15),
        ("jonas-nyc-bike", "JONAS-NYC-16x8-20151024-20160131.npz", "bike", (4800, 16, 8), "30min", 15),
        ("jonas-dc", "JONAS-DC-9x12-20151024-20160131.npz", "taxi", (2400, 9, 12), "1h", 0),
    ],
)
def test_jonas_grids(hubs, name, file, mode, shape, step, excluded):
    hub = hubs[name]
    with np.load(JONAS / file) as z:
        x, meta, mask = z[mode], z["meta_onehot"], z["mask"]
    t, rows, cols = shape
    assert x.shape == (*shape, 2) and hub.meta.step == step and hub.meta.extra["grid"] == [rows, cols]
    assert hub.meta.name == name  # the name its config's task.dataset says
    ids = hub.table("zones")["zone_id"].tolist()
    demand = hub.table("demand")
    assert np.array_equal(dense(demand, "zone_id", "count", ids), x[..., 0].reshape(t, -1))
    assert np.array_equal(dense(demand, "zone_id", "supply", ids), x[..., 1].reshape(t, -1))
    assert not demand.duplicated(["zone_id", "ts"]).any()
    assert hub.meta.extra["eval_excluded"] == [f"r{r:02d}c{c:02d}" for r, c in mask.reshape(-1, 2)]
    assert len(hub.meta.extra["eval_excluded"]) == excluded
    ts = pd.DatetimeIndex(demand["ts"].drop_duplicates())  # wall-clock slots reproduce the calendar one-hot
    per_day = t // 100
    slot = ts.hour * (per_day // 24) + ts.minute // (1440 // per_day)
    assert np.array_equal(meta[:, :per_day].argmax(1), slot)
    assert np.array_equal(meta[:, per_day : per_day + 7].argmax(1), ts.day_of_week)
    offday = (ts.day_of_week >= 5) | ts.strftime("%Y-%m-%d").isin(hub.meta.extra["holidays"])
    assert np.array_equal(meta[:, -1] == 1, offday)


def test_jonas_dst_day_is_regular_in_wall_clock(hubs):
    ts = pd.DatetimeIndex(hubs["jonas-nyc"].table("demand")["ts"].drop_duplicates())
    assert len(ts) == 4800 and (np.diff(ts.asi8) == 30 * 60 * 10**9).all()
    assert ts[0] == pd.Timestamp("2015-10-24 00:00", tz="Etc/GMT+5")


@pytest.mark.parametrize(
    ("file", "mode", "name"),
    [
        ("JONAS-NYC-16x8-20151024-20160131.npz", "taxi", "jonas-nyc"),
        ("JONAS-NYC-16x8-20151024-20160131.npz", "bike", "jonas-nyc-bike"),
        ("JONAS-DC-9x12-20151024-20160131.npz", "taxi", "jonas-dc"),
        ("JONAS-DC-9x12-20151024-20160131.npz", "bike", "jonas-dc-bike"),
    ],
)
def test_a_jonas_import_without_a_name_is_named_as_its_known_dataset(file, mode, name):
    # `cityagent hub import jonas FILE --mode MODE` passes no name: its hub must pass `task.dataset: <name>`
    assert import_dataset("jonas", JONAS / file, mode=mode).meta.name == name


def test_jonas_unknown_mode():
    with pytest.raises(ConfigError, match="use one of taxi, bike"):
        import_dataset("jonas", JONAS / "JONAS-DC-9x12-20151024-20160131.npz", mode="car")


# --- registry, known datasets, validation -----------------------------------------------------------------


def test_unknown_kind_and_option_list_what_is_valid():
    with pytest.raises(ConfigError, match="valid kinds are: gsnet, jonas, tgcn-csv, uctb"):
        import_dataset("csv", SPEED)
    with pytest.raises(ConfigError, match="unknown option"):
        import_dataset("uctb", DATA / "demand/uctb_metro/Metro_ShanghaiV1.tar.gz", speed=1)
    assert set(IMPORTERS) == {"tgcn-csv", "uctb", "gsnet", "jonas"}


def test_known_datasets_point_at_real_files(monkeypatch, tmp_path):
    for entry in DATASETS.values():
        assert entry.kind in IMPORTERS and (DATA / entry.path).is_file()
    monkeypatch.setenv("CITYAGENT_SHARED_DATA", str(DATA))
    assert shared_data_dir() == DATA
    monkeypatch.setenv("CITYAGENT_SHARED_DATA", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="CITYAGENT_SHARED_DATA"):
        shared_data_dir()
    with pytest.raises(ConfigError, match="known datasets are: sz-taxi"):
        known_dataset("sz")


@pytest.mark.parametrize(
    ("kind", "file", "right"),
    [
        ("uctb", SPEED, r"looks like a T-GCN speed-matrix CSV, not the UCTB tar\.gz archive .*'tgcn-csv' importer"),
        ("gsnet", DATA / "demand/uctb_didi/DiDi_Xian.tar.gz", r"looks like a UCTB tar\.gz archive.*'uctb' importer"),
        ("jonas", CHICAGO / "chicago_20x20_derived.npz", r"not the JONAS \.npz the 'jonas' importer.*'gsnet' importer"),
        ("uctb", JONAS / "JONAS-DC-9x12-20151024-20160131.npz", r"looks like a JONAS \.npz.*'jonas' importer"),
    ],
)
def test_a_file_given_to_the_wrong_importer_names_the_right_one(kind, file, right):
    with pytest.raises((HubError, ConfigError), match=right) as err:
        import_dataset(kind, file)
    assert "re-download" not in str(err.value)  # the file is fine


def test_a_misspelled_known_dataset_suggests_the_nearest():
    with pytest.raises(ConfigError, match=r"unknown dataset 'sz_taxi'; did you mean 'sz-taxi'\? known datasets"):
        import_known("sz_taxi")
    with pytest.raises(ConfigError, match=r"unknown dataset 'DIDI-XIAN'; did you mean 'didi-xian'\?"):
        known_dataset("DIDI-XIAN")


@pytest.mark.skipif(not HAS_VALIDATE, reason="cityagent.hub.validate is not written yet")
@pytest.mark.parametrize("name", list(DATASETS))
def test_every_imported_hub_validates(hubs, name):
    from cityagent.hub.validate import validate_hub

    report = validate_hub(hubs[name])
    assert report.ok, str(report)


def test_chongqing_coordinates_are_flagged_as_not_real(hubs, caplog):
    from cityagent.hub.validate import validate_hub

    metro = import_dataset("uctb", DATA / "demand/uctb_metro/Metro_Chongqing.tar.gz")
    assert "not in Chongqing" in caplog.text  # said on import
    note = metro.meta.extra["coordinates_note"]
    assert "34.27 N, 118.60 E" in note and "obfuscated" in note and "distance graphs" in note
    assert [str(i) for i in validate_hub(metro).find("zones", "not in Chongqing")] == [f"WARNING zones.lat: {note}"]
    for real in ("metro-shanghai", "didi-xian"):  # their coordinates are in their cities
        assert "coordinates_note" not in hubs[real].meta.extra


@pytest.mark.parametrize("name", ["sz-taxi", "jonas-dc"])
def test_round_trip_through_hub_files(hubs, name, tmp_path):
    from cityagent.hub import read_hub, write_hub

    hub = hubs[name]
    back = read_hub(write_hub(hub, tmp_path / name))
    assert back.meta == hub.meta and set(back.tables) == set(hub.tables)
    for table, df in hub.tables.items():
        pd.testing.assert_frame_equal(back.table(table), df)


def test_hub_tensors_reproduce_the_source_matrices(hubs):
    from cityagent.hub.tensor import to_tensor

    metro = to_tensor(hubs["metro-chongqing"], "demand", ["count"])  # operating-hours grid: 18 slots a day
    assert np.array_equal(metro.values[..., 0], uctb_pickle("uctb_metro/Metro_Chongqing.tar.gz")["Node"]["TrafficNode"])
    sz = to_tensor(hubs["sz-taxi"], "traffic", ["speed"], impute="zero")  # the T-GCN protocol's zeros
    assert np.array_equal(sz.values[..., 0], pd.read_csv(SPEED).iloc[:, 1:].to_numpy(dtype=np.float32))
