"""hub.json read from disk or SQL: step and timezone are required and typed, and validation says when the declared
step or zone disagrees with the data (review A, findings 1, 2 and 9)."""

import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from cityagent.errors import HubError
from cityagent.hub import HubMeta, read_hub, write_hub
from cityagent.hub.hub import MANIFEST
from cityagent.hub.sql import META_TABLE
from cityagent.hub.validate import validate_hub
from tests.factories import tiny_hub

MINI = {"name": "mini", "step": "15min", "timezone": "Asia/Shanghai"}


def csv_hub(root, manifest: object = MINI, freq: str = "15min", periods: int = 96, tz: str = "Asia/Shanghai"):
    """A hand-written CSV hub: 3 sensors, readings every ``freq`` written with their offsets, and ``manifest``."""
    root.mkdir(parents=True, exist_ok=True)
    ts = pd.date_range("2026-03-02", periods=periods, freq=freq, tz=tz)
    traffic = pd.DataFrame(
        {
            "sensor_id": np.repeat(list("abc"), len(ts)),
            "ts": np.tile(ts, 3),
            "speed": np.random.default_rng(0).uniform(20, 60, 3 * len(ts)).round(2),
        }
    )
    traffic.to_csv(root / "traffic.csv", index=False, date_format="%Y-%m-%dT%H:%M:%S%z")
    pd.DataFrame({"sensor_id": list("abc"), "lat": 22.5, "lon": 114.0}).to_csv(root / "sensors.csv", index=False)
    (root / MANIFEST).write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    return root


@pytest.mark.parametrize(("key", "example"), [("step", '"step": "15min"'), ("timezone", '"timezone": "Asia/Shanghai"')])
def test_a_manifest_without_step_or_timezone_names_the_key_and_an_example(tmp_path, key, example):
    root = csv_hub(tmp_path / "hub", {k: v for k, v in MINI.items() if k != key})
    with pytest.raises(HubError, match=f'hub.json has no "{key}"') as err:
        read_hub(root)
    assert example in str(err.value)


def test_the_example_step_is_the_datas_own(tmp_path):
    root = csv_hub(tmp_path / "hub", {"name": "mini", "timezone": "Asia/Shanghai"}, freq="1h")
    with pytest.raises(HubError, match=r'add the reading interval, e\.g\. "step": "1h"'):
        read_hub(root)


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({**MINI, "step": 15}, r'"step" is the number 15 but must be a string, e\.g\. "step": "15min"'),
        ([MINI], r"hub\.json holds a list, not a JSON object; write e\.g\. \{"),
        ({**MINI, "extra": [16, 8]}, r'"extra" is a list but must be an object, e\.g\. "extra": \{"grid"'),
        ({**MINI, "timezone": None}, r'"timezone" is null but must be a string'),
    ],
)
def test_wrong_manifest_types_are_named_not_a_traceback(tmp_path, manifest, message):
    with pytest.raises(HubError, match=message):
        read_hub(csv_hub(tmp_path / "hub", manifest))


def test_a_number_as_step_in_memory_is_a_report_error():
    hub = tiny_hub()
    hub.meta.step = 15  # type: ignore[assignment]
    assert validate_hub(hub).find("hub.json", "not a pandas offset")


def test_a_sql_manifest_without_step_names_its_table(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    write_hub(tiny_hub(), url, prefix="own_")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        manifest = {k: v for k, v in tiny_hub().meta.to_dict().items() if k != "step"}
        conn.execute(sa.text(f'UPDATE "own_{META_TABLE}" SET manifest = :m'), {"m": json.dumps(manifest)})
    engine.dispose()
    with pytest.raises(HubError, match=rf'table own_{META_TABLE} has no "step"; add the reading interval'):
        read_hub(url, prefix="own_")


def test_meta_built_in_python_keeps_its_defaults():
    assert HubMeta().step == "5min" and HubMeta().timezone == "UTC"


def test_a_declared_step_finer_than_the_data_is_an_error(tmp_path):
    root = csv_hub(tmp_path / "hub", {**MINI, "step": "5min"})
    report = validate_hub(read_hub(root))
    [issue] = report.find("traffic", "the readings are every 15min")
    assert issue.level == "error" and issue.column == "ts"
    assert "but hub.json step is 5min; set step to '15min'" in issue.message
    assert not validate_hub(read_hub(csv_hub(tmp_path / "ok"))).issues  # the right step: nothing to say


def test_real_gaps_stay_warnings(tmp_path):
    hub = tiny_hub()
    traffic = hub.tables["traffic"]
    hub.tables["traffic"] = traffic.drop(index=[2, 5, 6, 11]).reset_index(drop=True)
    report = validate_hub(hub)
    assert report.ok and report.find("traffic", "missing step") and not report.find("traffic", "readings are every")


def test_one_series_every_other_step_and_one_complete_is_no_step_error():
    hub = tiny_hub()
    t = hub.tables["traffic"]
    odd = (t["sensor_id"] == "s0") & (t.groupby("sensor_id").cumcount() % 2 == 1)
    hub.tables["traffic"] = t[~odd].reset_index(drop=True)
    assert not validate_hub(hub).find("traffic", "readings are every")


def test_offsets_that_never_match_the_manifest_zone_are_a_warning(tmp_path):
    root = csv_hub(tmp_path / "hub", {**MINI, "timezone": "Europe/London"})
    report = validate_hub(read_hub(root))
    [issue] = report.find("traffic", "carry UTC offset +08:00")
    assert issue.level == "warning" and report.ok
    assert "hub.json timezone Europe/London is +00:00" in issue.message
    assert "e.g. 2026-03-02T00:00:00+08:00" in issue.message


@pytest.mark.parametrize(
    ("tz", "zone"), [("Asia/Shanghai", "Asia/Shanghai"), ("UTC", "Asia/Shanghai"), ("America/New_York", "US/Eastern")]
)
def test_offsets_of_the_zone_or_utc_pass(tmp_path, tz, zone):
    root = csv_hub(tmp_path / "hub", {**MINI, "timezone": zone}, tz=tz)
    assert not validate_hub(read_hub(root)).find("traffic", "carry UTC offset")
