"""A SQL hub whose manifest names no IANA zone (a typo such as "Asia/Shangai") is refused naming the field, the
bad value, the nearest zone and the SQL that fixes it, instead of a raw zoneinfo error; one is never written."""

import json

import pytest
import sqlalchemy as sa

from cityagent.errors import HubError
from cityagent.hub import read_hub, write_hub
from cityagent.hub.sql import META_TABLE
from tests.factories import tiny_hub


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))


def _mistype_zone(url: str, table: str, zone: str) -> None:
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            manifest = json.loads(conn.execute(sa.text(f'SELECT manifest FROM "{table}"')).scalar_one())
            manifest["timezone"] = zone
            conn.execute(sa.text(f'UPDATE "{table}" SET manifest = :m'), {"m": json.dumps(manifest)})
    finally:
        engine.dispose()


def _run(url: str, statement: str) -> None:
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def _check_typo_is_named_and_its_fix_works(url: str, prefix: str) -> None:
    hub = tiny_hub()
    assert hub.meta.timezone == "Asia/Shanghai"
    write_hub(hub, url, prefix=prefix)
    table = prefix + META_TABLE
    _mistype_zone(url, table, "Asia/Shangai")
    with pytest.raises(HubError) as err:
        read_hub(url, prefix=prefix)
    msg = str(err.value)
    assert f"table {table}: timezone 'Asia/Shangai' is not an IANA zone; did you mean 'Asia/Shanghai'?" in msg
    fix = f"""UPDATE "{table}" SET manifest = REPLACE(manifest, '"Asia/Shangai"', '"Asia/Shanghai"')"""
    assert fix in msg and "\n" not in msg
    _run(url, fix)  # what the message says to do, done
    assert read_hub(url, prefix=prefix).meta.timezone == "Asia/Shanghai"


def test_sqlite_hub_with_a_mistyped_timezone(tmp_path):
    _check_typo_is_named_and_its_fix_works(f"sqlite:///{tmp_path / 'hub.db'}", "")


@pytest.mark.postgres
def test_postgres_hub_with_a_mistyped_timezone(pg_url, sql_prefix):
    _check_typo_is_named_and_its_fix_works(pg_url, sql_prefix)


def test_a_zone_with_no_near_name_says_what_to_set(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    write_hub(tiny_hub(), url)
    _mistype_zone(url, META_TABLE, "Moon/Base")
    with pytest.raises(HubError, match=r"timezone 'Moon/Base' is not an IANA zone; use an IANA name") as err:
        read_hub(url)
    assert f'Set "timezone" in the JSON manifest row of {META_TABLE} to the city\'s IANA zone' in str(err.value)


def test_a_hub_with_a_mistyped_timezone_is_never_written(tmp_path):
    hub = tiny_hub()
    hub.meta.timezone = "Asia/Shangai"
    db = tmp_path / "hub.db"
    with pytest.raises(HubError, match=r"cannot write the hub to sqlite:///.*hub\.db: its timezone 'Asia/Shangai'"):
        write_hub(hub, f"sqlite:///{db}")
    assert not db.exists()  # refused before connecting: no empty database left behind
