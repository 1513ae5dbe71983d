"""Hubs as SQL tables (PostgreSQL, SQLite, MySQL, ...) by SQLAlchemy URL.

Each table is ``<prefix><table>``; the manifest is one JSON row in ``<prefix>hub_meta``. A write happens in one
transaction, so readers see the old hub or the new one, never a mix. SQL has no row order: reads come back
ordered by each table's key (id, ts).
"""

import importlib.util
import json

import pandas as pd
import sqlalchemy as sa

from cityagent.errors import HubError
from cityagent.hub.hub import Hub, HubMeta
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


def read_sql_hub(url: str, prefix: str = "") -> Hub:
    """Read the hub stored under ``prefix`` in the database at ``url``."""
    engine = _engine(url)
    existing = set(sa.inspect(engine).get_table_names())
    meta = None
    if prefix + META_TABLE in existing:
        with engine.connect() as conn:
            row = conn.execute(sa.text(f'SELECT manifest FROM "{prefix}{META_TABLE}"')).scalar_one_or_none()
        meta = HubMeta.from_dict(json.loads(row)) if row else None
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
            f"the database {sa.make_url(engine.url).render_as_string(hide_password=True)} holds no hub tables "
            f"with prefix {prefix!r}; write one with `cityagent hub copy DIR URL`"
        )
    meta = meta or infer_meta(tables, name=prefix.rstrip("_") or "sql")
    return Hub({n: _restore_kinds(df, n, meta.timezone) for n, df in tables.items()}, meta)


def write_sql_hub(hub: Hub, url: str, prefix: str = "") -> str:
    """Replace the hub under ``prefix`` in one transaction; tables the new hub lacks are dropped."""
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
