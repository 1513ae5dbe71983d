"""Hubs round-trip through Parquet, CSV, fsspec URIs, SQLite and PostgreSQL unchanged, and fail clearly."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from cityagent.errors import HubError
from cityagent.hub import read_hub, write_hub
from cityagent.hub.schema import TABLES
from cityagent.hub.validate import validate_hub
from tests.factories import tiny_hub


def assert_same_hub(a, b):
    assert a.meta == b.meta
    assert set(a.tables) == set(b.tables)
    for name, df in a.tables.items():
        key = [k for k in (*TABLES[name].key, "ts") if k in df]
        left = df.sort_values(key, kind="stable").reset_index(drop=True)
        right = b.tables[name].sort_values(key, kind="stable").reset_index(drop=True)[list(df.columns)]
        pd.testing.assert_frame_equal(left, right, check_dtype=False, check_index_type=False)
        if "ts" in df:
            assert str(right["ts"].dt.tz) == a.meta.timezone


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_directory_round_trip(tmp_path, fmt):
    hub = tiny_hub()
    write_hub(hub, tmp_path / "hub", format=fmt)
    back = read_hub(tmp_path / "hub")
    assert_same_hub(hub, back)
    assert validate_hub(back).ok


def test_parquet_is_partitioned_by_local_date(tmp_path):
    write_hub(tiny_hub(), tmp_path / "hub")
    parts = sorted(p.name for p in (tmp_path / "hub" / "traffic").iterdir())
    assert parts == ["date=2026-03-01", "date=2026-03-02"]  # 22:00 → 03:45 local time


def test_fsspec_uri_round_trip():
    hub = tiny_hub()
    write_hub(hub, "memory://hubs/tiny")
    assert_same_hub(hub, read_hub("memory://hubs/tiny"))


def test_sqlite_round_trip(tmp_path):
    hub = tiny_hub()
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    write_hub(hub, url)
    back = read_hub(url)
    assert_same_hub(hub, back)
    assert validate_hub(back).ok


@pytest.mark.postgres
def test_postgres_round_trip(pg_url, sql_prefix):
    hub = tiny_hub()
    hub.tables["zones"]["risk_mask"] = [True, False]
    hub.tables["zones"]["row"] = [0, 1]
    hub.tables["zones"]["col"] = [0, 0]
    write_hub(hub, pg_url, prefix=sql_prefix)
    back = read_hub(pg_url, prefix=sql_prefix)
    assert_same_hub(hub, back)
    assert validate_hub(back).ok


def test_failed_write_leaves_the_old_hub(tmp_path, monkeypatch):
    import cityagent.hub.files as files

    old = tiny_hub(sensors=2)
    write_hub(old, tmp_path / "hub")
    real = files._write_parquet
    calls = {"n": 0}

    def flaky(fs, path, df):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("disk full")
        real(fs, path, df)

    monkeypatch.setattr(files, "_write_parquet", flaky)
    with pytest.raises(OSError, match="disk full"):
        write_hub(tiny_hub(sensors=3), tmp_path / "hub")
    assert_same_hub(old, read_hub(tmp_path / "hub"))
    assert [p.name for p in tmp_path.iterdir()] == ["hub"]  # no temporary leftovers


def test_refuses_to_overwrite_a_non_hub_directory(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(HubError, match="not a hub"):
        write_hub(tiny_hub(), tmp_path / "photos")
    assert (tmp_path / "photos" / "cat.jpg").read_bytes() == b"meow"


def test_missing_location_and_empty_location(tmp_path):
    with pytest.raises(HubError, match="does not exist"):
        read_hub(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HubError, match="holds no hub data"):
        read_hub(tmp_path / "empty")


def test_corrupt_parquet_names_the_file(tmp_path):
    write_hub(tiny_hub(), tmp_path / "hub")
    bad = tmp_path / "hub" / "traffic" / "date=2026-03-02" / "part-0.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(HubError, match=r"table traffic: cannot read .*date=2026-03-02/part-0.parquet"):
        read_hub(tmp_path / "hub")


def test_corrupt_manifest(tmp_path):
    write_hub(tiny_hub(), tmp_path / "hub")
    (tmp_path / "hub" / "hub.json").write_text("{nope")
    with pytest.raises(HubError, match="not a valid hub manifest"):
        read_hub(tmp_path / "hub")


def test_hand_made_csv_hub_without_manifest(tmp_path):
    d = tmp_path / "city"
    d.mkdir()
    ts = pd.date_range("2026-01-01", periods=4, freq="1h", tz="Europe/Berlin")
    pd.DataFrame({"zone_id": "A", "ts": ts, "count": [1, 2, 3, 4]}).to_csv(d / "demand.csv", index=False)
    pd.DataFrame({"zone_id": ["A"], "lat": [52.5], "lon": [13.4]}).to_csv(d / "zones.csv", index=False)
    hub = read_hub(d)
    assert hub.meta.step == "h" and hub.meta.timezone == "Etc/GMT-1"
    report = validate_hub(hub)
    assert report.ok and report.find("hub.json", "no manifest")


def test_csv_with_bad_timestamp_and_number_is_reported(tmp_path):
    d = tmp_path / "city"
    d.mkdir()
    (d / "hub.json").write_text(json.dumps({"name": "x", "step": "1h", "timezone": "UTC"}))
    (d / "traffic.csv").write_text(
        "sensor_id,ts,speed\na,2026-01-01T00:00:00+00:00,10\na,yesterday,11\na,2026-01-01T02:00:00+00:00,fast\n"
    )
    report = validate_hub(read_hub(d))
    ts_issue = report.find("traffic", "not timestamps")[0]
    assert ts_issue.row == 1 and "'yesterday'" in ts_issue.message
    assert report.find("traffic", "must be numeric")


def test_unreachable_database_says_where():
    with pytest.raises(HubError, match=r"cannot connect to the hub database postgresql\+psycopg://x@127.0.0.1:1/db"):
        read_hub("postgresql://x@127.0.0.1:1/db")


def test_empty_database(tmp_path):
    with pytest.raises(HubError, match="holds no hub tables"):
        read_hub(f"sqlite:///{tmp_path / 'empty.db'}")


def test_a_flipped_bit_in_a_parquet_page_is_an_error_not_a_changed_reading(tmp_path):
    """Pages carry CRC checksums (written and verified): storage corruption used to read back as other speeds."""
    write_hub(tiny_hub(), tmp_path / "hub")
    truth = read_hub(tmp_path / "hub").table("traffic")["speed"].to_numpy()
    part = sorted((tmp_path / "hub" / "traffic").rglob("*.parquet"))[0]
    raw = bytearray(part.read_bytes())
    meta = pq.ParquetFile(part).metadata.row_group(0)
    speed = next(meta.column(i) for i in range(meta.num_columns) if meta.column(i).path_in_schema == "speed")
    start = speed.dictionary_page_offset or speed.data_page_offset
    changed = errors = 0
    for offset in range(start + 32, start + speed.total_compressed_size, 3):  # the pages' data, past a header
        flipped = bytearray(raw)
        flipped[offset] ^= 0x10
        part.write_bytes(bytes(flipped))
        try:
            speeds = read_hub(tmp_path / "hub").table("traffic")["speed"].to_numpy()
        except HubError:
            errors += 1
            continue
        changed += int(not np.array_equal(speeds, truth))
    assert changed == 0 and errors > 10
