"""Hand-made hubs that go wrong the way a user's own tables do: empty files, header-only tables, misnamed or doubled
files, values that are no numbers; and `hub copy` and the importers saying what a file is (review A, 5–7, 10–12)."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cityagent.agent.cli import app
from cityagent.errors import CityAgentError, HubError
from cityagent.hub import Hub, read_hub, write_hub
from cityagent.hub.importers import import_dataset
from cityagent.hub.validate import validate_hub
from tests.factories import tiny_hub
from tests.hub.test_manifest_checks import csv_hub


def test_an_empty_csv_file_names_the_file(tmp_path):
    root = csv_hub(tmp_path / "hub")
    (root / "traffic.csv").write_text("")
    with pytest.raises(HubError, match=r"table traffic: .*traffic\.csv is empty \(no header\); write the header"):
        read_hub(root)
    (root / "traffic.csv").write_text("\n\n")
    with pytest.raises(HubError, match=r"traffic\.csv is empty \(no header\)"):
        read_hub(root)


def test_a_header_only_table_is_one_error_naming_its_file(tmp_path):
    root = csv_hub(tmp_path / "hub")
    (root / "traffic.csv").write_text("sensor_id,ts,speed\n")
    report = validate_hub(read_hub(root))
    assert [i.message for i in report.errors] == [
        "table traffic (traffic.csv) has no rows; add its readings or remove it"
    ]


def test_an_empty_table_in_memory_is_one_error():
    hub = tiny_hub()
    hub.tables["traffic"] = hub.tables["traffic"].iloc[:0]
    assert [i.message for i in validate_hub(hub).errors] == ["table traffic has no rows; add its readings or remove it"]


def test_a_misnamed_table_file_is_a_warning_and_named_when_the_table_is_missing(tmp_path):
    root = csv_hub(tmp_path / "hub")
    (root / "traffic.csv").rename(root / "trafic.csv")
    (root / "notes.txt").write_text("mine")
    (root / ".agent.lock").write_text("")  # the agent's own files say nothing
    (root / "_rejected").mkdir()
    hub = read_hub(root)
    report = validate_hub(hub)
    assert [i.message for i in report.warnings] == [
        "notes.txt is not a hub table, so it is not read; hub tables are traffic, demand, incidents, sensors, "
        "zones, edges, weather, decisions",
        "trafic.csv is not a hub table: did you mean traffic? It is not read until renamed",
    ]
    with pytest.raises(
        HubError, match=r"no 'traffic' table .*holds trafic\.csv, which is not read: rename it traffic\.csv"
    ):
        hub.table("traffic")


def test_a_table_in_a_format_the_reader_skips_is_named(tmp_path):
    root = csv_hub(tmp_path / "hub")
    (root / "traffic.csv").rename(root / "traffic.txt")
    [issue] = validate_hub(read_hub(root)).find("hub", "traffic.txt")
    assert "table traffic is read from traffic.csv, traffic.parquet or a traffic/ folder" in issue.message


def test_two_files_of_one_table_are_refused_naming_both(tmp_path):
    root = csv_hub(tmp_path / "hub")
    pd.read_csv(root / "traffic.csv").to_parquet(root / "traffic.parquet")
    with pytest.raises(HubError, match=r"table traffic: .* holds both traffic\.parquet and traffic\.csv"):
        read_hub(root)


def test_a_table_file_with_appended_date_parts_reads_as_one_table(tmp_path):
    """The agent appends decisions (the listener readings) as date parts, also where `write_hub` kept one file."""
    root = csv_hub(tmp_path / "hub")
    table = pd.read_csv(root / "traffic.csv")
    first, rest = table.iloc[: len(table) // 2], table.iloc[len(table) // 2 :]
    first.to_csv(root / "traffic.csv", index=False)
    (root / "traffic" / "date=2099-01-01").mkdir(parents=True)
    rest.to_csv(root / "traffic" / "date=2099-01-01" / "part-0.csv", index=False)
    assert len(read_hub(root).table("traffic")) == len(table)


@pytest.mark.parametrize("bad", ["fast", "45.5 km/h"])
def test_a_value_that_is_no_number_is_named_with_its_row(tmp_path, bad):
    root = csv_hub(tmp_path / "hub")
    t = pd.read_csv(root / "traffic.csv", dtype={"speed": str})
    t.loc[5, "speed"] = bad
    t.to_csv(root / "traffic.csv", index=False)
    [issue] = validate_hub(read_hub(root)).find("traffic", "must be numeric")
    assert issue.row == 5 and f"(first bad value {bad!r}); write plain numbers" in issue.message


def test_ids_unknown_to_sensors_print_as_plain_values(tmp_path):
    hub = tiny_hub()
    hub.tables["traffic"] = hub.tables["traffic"].assign(sensor_id=np.arange(len(hub.tables["traffic"])) % 3 + 1)
    [issue] = validate_hub(hub).find("traffic", "missing from sensors")
    assert "(e.g. 1, 2, 3)" in issue.message and "np.int64" not in issue.message


def test_a_missing_key_column_blames_only_the_column(tmp_path):
    hub = tiny_hub()
    hub.tables["traffic"] = hub.tables["traffic"].rename(columns={"ts": "timestamp"})
    report = validate_hub(hub)
    assert report.find("traffic", "missing required column 'ts'") and not report.find("traffic", "duplicate")


def test_sql_hubs_get_sql_advice(tmp_path):
    hub = tiny_hub()
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    write_hub(hub, url)
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a team's table with integer ids
        conn.execute(sa.text("DROP TABLE sensors"))
        conn.execute(sa.text("CREATE TABLE sensors (sensor_id INTEGER, lat REAL, lon REAL)"))
        conn.execute(sa.text("INSERT INTO sensors VALUES (1, 22.5, 114.0)"))
    engine.dispose()
    [issue] = validate_hub(read_hub(url)).find("sensors", "must be strings")
    assert "store the column as text (or cast it in SQL)" in issue.message and "astype" not in issue.message


def cli(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_copy_refuses_an_invalid_hub_unless_allowed(tmp_path):
    hub = tiny_hub()
    hub.tables["traffic"].loc[7, "speed"] = float("nan")
    write_hub(hub, tmp_path / "nan")
    refused = cli("hub", "copy", tmp_path / "nan", tmp_path / "copy")
    assert refused.exit_code == 1 and "NaN" in refused.output and "--allow-invalid" in refused.output
    assert not (tmp_path / "copy").exists()
    allowed = cli("hub", "copy", tmp_path / "nan", tmp_path / "copy", "--allow-invalid")
    assert allowed.exit_code == 0 and "copied" in allowed.output
    assert validate_hub(read_hub(tmp_path / "copy")).find("traffic", "NaN")  # copied as it was


def test_copy_help_documents_allow_invalid():
    assert "--allow-invalid" in cli("hub", "copy", "--help").output


def test_an_adjacency_csv_given_to_another_importer_points_at_tgcn_adj(tmp_path):
    adj = tmp_path / "adj.csv"
    adj.write_text("0,1,0\n1,0,1\n0,1,0\n")
    for kind in ("uctb", "gsnet", "jonas"):
        with pytest.raises(CityAgentError, match=r"looks like an adjacency matrix CSV .*--adj file of the 'tgcn-csv'"):
            import_dataset(kind, adj)


def test_a_hub_table_or_parquet_given_to_an_importer_says_no_import_is_needed(tmp_path):
    root = csv_hub(tmp_path / "hub")
    with pytest.raises(
        HubError, match=r"looks like a hub table CSV \(columns sensor_id, ts, speed\).*no import is needed"
    ):
        import_dataset("tgcn-csv", root / "traffic.csv")
    pq = tmp_path / "traffic.parquet"
    pd.read_csv(root / "traffic.csv").to_parquet(pq)
    with pytest.raises(HubError, match=r"looks like a Parquet file, .*no importer reads Parquet"):
        import_dataset("gsnet", pq)


@pytest.mark.parametrize(
    ("kind", "name"), [("gsnet", "chicago.npz"), ("jonas", "JONAS-NYC-16x8-20151024-20160131.npz")]
)
def test_a_corrupt_npz_is_called_corrupt_without_numpys_pickle_advice(tmp_path, kind, name):
    bad = tmp_path / name
    bad.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(HubError) as err:
        import_dataset(kind, bad)
    assert "corrupt or of another kind" in str(err.value) and "allow_pickle" not in str(err.value)


def test_a_hub_written_by_us_reads_back_without_warnings(tmp_path):
    for fmt in ("parquet", "csv"):
        write_hub(tiny_hub(), tmp_path / fmt, format=fmt)
        hub = read_hub(tmp_path / fmt)
        assert isinstance(hub, Hub) and validate_hub(hub).issues == []
        assert json.loads((tmp_path / fmt / "hub.json").read_text())["step"] == "15min"


def test_edges_without_the_optional_kind_are_still_checked_for_duplicates():
    hub = tiny_hub()
    edges = hub.tables["edges"].drop(columns="kind")
    hub.tables["edges"] = pd.concat([edges, edges.iloc[:1]], ignore_index=True)
    assert validate_hub(hub).find("edges", "duplicate (src, dst) row")


def test_a_naive_timestamp_is_told_to_take_the_hubs_own_zone():
    hub = tiny_hub(tz="Europe/Paris")
    hub.tables["traffic"] = hub.tables["traffic"].assign(ts=hub.tables["traffic"]["ts"].dt.tz_localize(None))
    [issue] = validate_hub(hub).find("traffic", "timezone-naive")
    assert ".dt.tz_localize('Europe/Paris')" in issue.message
