"""Hubs as SQL tables (PostgreSQL, SQLite, MySQL, ...) by SQLAlchemy URL.

Each table is ``<prefix><table>``; the manifest is one JSON row in ``<prefix>hub_meta``. A write happens in one
transaction, so readers see the old hub or the new one, never a mix. SQL has no row order: reads come back
ordered by each table's key (id, ts).
"""

import importlib.util
import json
import zoneinfo

import pandas as pd
import sqlalchemy as sa

from cityagent.config_errors import nearest
from cityagent.errors import HubError
from cityagent.hub.hub import Hub, HubMeta, Origin
from cityagent.hub.schema import TABLES
from cityagent.hub.timestamps import infer_meta, parse_ts_column

META_TABLE = "hub_meta"


def _engine(url: str) -> sa.Engine:
    if url.startswith(("postgresql://", "postgres://")) and importlib.util.find_spec("psycopg2") is None:
        url = "postgresql+psycopg://" + url.split("://", 1)[1]  # psycopg 3 is what we ship
    try:
        engine = sa.create_engine(url)
        with engine.connect():
            pass
    except sa.exc.ArgumentError as e:
        raise HubError(f"{url!r} is not a valid SQLAlchemy URL: {e}") from e
    except ModuleNotFoundError as e:
        raise HubError(f"no database driver for {url.split('://')[0]}: {e}; pip install the driver") from e
    except sa.exc.OperationalError as e:
        shown = sa.make_url(url).render_as_string(hide_password=True)
        raise HubError(
            f"cannot connect to the hub database {shown}: {str(e.orig).strip().splitlines()[0]}; "
            f"check that the server is running and the URL is right"
        ) from e
    return engine


def _shown(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _masked(url: str) -> str:
    """``url`` with its password hidden (as given when it is no SQLAlchemy URL)."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return repr(url)


def _check_timezone(meta: HubMeta, engine: sa.Engine, prefix: str) -> None:
    """A manifest naming no IANA zone is refused before any timestamp is read in it, naming the row to fix."""
    zone = meta.timezone_problem()
    if zone:
        table = prefix + META_TABLE
        raise HubError(f"the hub database {_shown(engine)}, table {table}: {zone} {_zone_fix(meta.timezone, table)}")


def _zone_fix(bad: object, table: str) -> str:
    """What to do, as one SQL statement that corrects the manifest (to the nearest valid zone, when one is near)."""
    good = nearest(str(bad), zoneinfo.available_timezones(), cutoff=0.8) if isinstance(bad, str) else None
    if not good or "'" in str(bad):
        return f'Set "timezone" in the JSON manifest row of {table} to the city\'s IANA zone, then read the hub again.'
    return (
        f'Correct the manifest row, e.g. UPDATE "{table}" SET manifest = '
        f"REPLACE(manifest, '\"{bad}\"', '\"{good}\"'), then read the hub again."
    )


def _restore_kinds(df: pd.DataFrame, name: str, timezone: str) -> pd.DataFrame:
    for col in TABLES[name].columns:
        if col.name not in df:
            continue
        if col.kind == "ts":
            df[col.name] = parse_ts_column(df[col.name], timezone)
        elif col.kind == "bool" and pd.api.types.is_integer_dtype(df[col.name]):
            if df[col.name].isin([0, 1]).all():  # SQLite stores booleans as 0/1
                df[col.name] = df[col.name].astype(bool)
    return df


def _manifest(row: str, where: str) -> HubMeta:
    """The manifest row's JSON, with step and timezone required (see ``HubMeta.from_dict``)."""
    try:
        raw = json.loads(row)
    except (json.JSONDecodeError, TypeError) as e:
        raise HubError(f"{where}: the manifest is not valid JSON ({e}); write it as one JSON object") from e
    return HubMeta.from_dict(raw, where=where)


def read_sql_hub(url: str, prefix: str = "") -> Hub:
    """Read the hub stored under ``prefix`` in the database at ``url``."""
    engine = _engine(url)
    existing = set(sa.inspect(engine).get_table_names())
    meta = None
    if prefix + META_TABLE in existing:
        with engine.connect() as conn:
            row = conn.execute(sa.text(f'SELECT manifest FROM "{prefix}{META_TABLE}"')).scalar_one_or_none()
        meta = _manifest(row, f"the hub database {_shown(engine)}, table {prefix}{META_TABLE}") if row else None
        if meta is not None:
            _check_timezone(meta, engine, prefix)
    tables = {}
    for name, schema in TABLES.items():
        if prefix + name not in existing:
            continue
        order = [k for k in (*schema.key, "ts") if k]
        with engine.connect() as conn:
            cols = [c["name"] for c in sa.inspect(conn).get_columns(prefix + name)]
            by = ", ".join(f'"{c}"' for c in dict.fromkeys(order) if c in cols)
            query = f'SELECT * FROM "{prefix}{name}"' + (f" ORDER BY {by}" if by else "")
            tables[name] = pd.read_sql_query(sa.text(query), conn)
    if not tables and meta is None:
        raise HubError(
            f"the database {_shown(engine)} holds no hub tables "
            f"with prefix {prefix!r}; write one with `cityagent hub copy DIR URL`"
        )
    meta = meta or infer_meta(tables, name=prefix.rstrip("_") or "sql")
    origin = Origin("sql", tables={n: prefix + n for n in tables})
    return Hub({n: _restore_kinds(df, n, meta.timezone) for n, df in tables.items()}, meta, origin)


def write_sql_hub(hub: Hub, url: str, prefix: str = "") -> str:
    """Replace the hub under ``prefix`` in one transaction; tables the new hub lacks are dropped."""
    zone = hub.meta.timezone_problem()
    if zone:  # the hub could not be read back; checked before connecting, which would leave an empty SQLite file
        raise HubError(f"cannot write the hub to {_masked(url)}: its {zone}")
    engine = _engine(url)
    with engine.begin() as conn:
        existing = set(sa.inspect(conn).get_table_names())
        for name in TABLES:
            if name not in hub.tables and prefix + name in existing:
                conn.execute(sa.text(f'DROP TABLE "{prefix}{name}"'))
        for name, df in hub.tables.items():
            if engine.dialect.name == "sqlite":  # SQLite has no time type: store ISO text with its offset
                df = df.assign(
                    **{c: df[c].map(lambda t: t.isoformat()) for c in df if isinstance(df[c].dtype, pd.DatetimeTZDtype)}
                )
            chunk = max(1, 30000 // max(1, len(df.columns)))
            df.to_sql(prefix + name, conn, if_exists="replace", index=False, chunksize=chunk)
        manifest = pd.DataFrame({"manifest": [json.dumps(hub.meta.to_dict(), default=str)]})
        manifest.to_sql(prefix + META_TABLE, conn, if_exists="replace", index=False)
    return url
