"""An existing hub is never overwritten by accident: the refusal names what is there and how to proceed."""

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from cityagent.agent.partfiles import write_part
from cityagent.errors import HubError
from cityagent.hub import Hub, read_hub, write_hub
from cityagent.hub.replace import check_replace, existing_hub
from tests.factories import tiny_hub

TZ = "Asia/Shanghai"


def decisions(n: int, day: str = "2026-03-02") -> pd.DataFrame:
    ts = pd.Timestamp(f"{day} 08:00", tz=TZ)
    return pd.DataFrame(
        {"ts": [ts] * n, "kind": "congestion_alert", "target_id": [f"s{i}" for i in range(n)], "value": 12.5}
    )


def test_no_hub_is_no_refusal(tmp_path):
    check_replace(tmp_path / "new")  # absent
    (tmp_path / "empty").mkdir()
    check_replace(tmp_path / "empty")
    assert existing_hub(tmp_path / "empty") is None
    check_replace(f"sqlite:///{tmp_path / 'new.db'}", prefix="city_")


def test_a_hub_directory_is_refused_naming_it_and_the_fix(tmp_path):
    hub = tiny_hub()
    hub.meta.name, hub.meta.source = "sz-taxi", "tgcn-csv:sz_speed.csv"
    write_hub(hub, tmp_path / "hub")
    with pytest.raises(HubError) as e:
        check_replace(tmp_path / "hub")
    msg = str(e.value)
    assert "already holds the hub 'sz-taxi' (source: tgcn-csv:sz_speed.csv" in msg
    assert "tables: demand, edges, incidents, sensors, traffic, weather, zones" in msg
    assert "decision" not in msg and "appended" not in msg  # nothing of the kind is there
    assert "pass --force" in msg and "another --out" in msg
    check_replace(tmp_path / "hub", force=True)


def test_decisions_appended_readings_and_rejections_are_counted(tmp_path):
    root = tmp_path / "hub"
    write_hub(tiny_hub(), root)
    write_part(root / "decisions" / "date=2026-03-02", decisions(3))
    write_part(root / "decisions" / "date=2026-03-03", decisions(2, "2026-03-03"))
    traffic = read_hub(root).table("traffic")
    later = traffic.tail(2).assign(ts=traffic["ts"].max() + pd.Timedelta("15min"))
    write_part(root / "traffic" / "date=2026-03-02", later)
    (root / "_rejected").mkdir()
    (root / "_rejected" / "2026-03-02.jsonl").write_text('{"kind": "malformed"}\n')
    with pytest.raises(HubError) as e:
        check_replace(root, elsewhere="DEST")
    msg = str(e.value)
    assert "5 decisions the agent made" in msg and "1 appended part of live readings" in msg
    assert "1 file of rejected readings in _rejected/" in msg and "another DEST" in msg


def test_a_hub_at_an_fsspec_uri_is_refused():
    write_hub(tiny_hub(), "memory://replace/hub")
    with pytest.raises(HubError, match="memory://replace/hub already holds the hub"):
        check_replace("memory://replace/hub")


def test_a_sqlite_prefix_with_a_manifest_or_any_hub_table_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    write_hub(tiny_hub(), url, prefix="city_")
    with pytest.raises(HubError) as e:
        check_replace(url, prefix="city_")
    assert "(prefix 'city_') already holds the hub" in str(e.value) and "city_traffic" in str(e.value)
    assert "another --prefix or database" in str(e.value)
    check_replace(url, prefix="other_")  # another prefix in the same database is free
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a bare table someone made by hand is a hub's table all the same
        conn.execute(sa.text('CREATE TABLE "hand_sensors" (sensor_id TEXT)'))
    engine.dispose()
    with pytest.raises(HubError, match=r"already holds a hub \(no manifest; tables: hand_sensors\)"):
        check_replace(url, prefix="hand_")


@pytest.mark.postgres
def test_a_postgres_prefix_is_refused_with_its_decisions_counted(pg_url, sql_prefix):
    hub = tiny_hub()
    hub.tables["decisions"] = decisions(4)
    write_hub(hub, pg_url, prefix=sql_prefix)
    with pytest.raises(HubError) as e:
        check_replace(pg_url, prefix=sql_prefix)
    assert f"{sql_prefix}traffic" in str(e.value) and "4 decisions the agent made" in str(e.value)


def test_a_hub_without_decisions_says_the_agent_writes_them(tmp_path: Path):
    write_hub(tiny_hub(), tmp_path / "hub")
    with pytest.raises(HubError, match=r"no 'decisions' table .*run `cityagent agent run` \(or `cityagent demo`\)"):
        read_hub(tmp_path / "hub").table("decisions")
    with pytest.raises(HubError, match="import or synthesise data that includes weather"):
        Hub({}).table("weather")
