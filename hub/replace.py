"""Refuse to write a hub over an existing one unless asked: `hub synth`, `hub import` and `hub copy` share this.

A hub can hold what no command can write again: the agent's append-only ``decisions``, readings appended by
``hub listen`` (``part-<uuid>.parquet`` files) and its ``_rejected/`` readings. So a target that holds a hub (a
directory or URI with ``hub.json``; a SQL prefix with a ``hub_meta`` table or any hub table) is replaced only
with ``force``. The Python writers (``write_hub``, ``synthesize``) keep replacing, as documented.
"""

import json
import posixpath
import re
from pathlib import Path

from cityagent.errors import HubError
from cityagent.hub.hub import MANIFEST
from cityagent.hub.io import is_sql_url
from cityagent.hub.schema import TABLES

APPENDED_PART = re.compile(r"part-[0-9a-f-]{36}\.parquet")  # agent/partfiles.py: part-<uuid7>.parquet
REJECTED = "_rejected"  # where `hub listen` keeps rejected readings (agent/deadletter.py)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _describe(manifest: dict | None, tables: list[str], decisions: int, extras: list[str]) -> str:
    name = "a hub" if manifest is None else f"the hub {manifest.get('name', '?')!r}"
    source = "no manifest" if manifest is None else f"source: {manifest.get('source') or 'not recorded'}"
    facts = [source, f"tables: {', '.join(tables) or 'none'}"]
    if decisions:
        facts.append(f"{_plural(decisions, 'decision')} the agent made")
    return f"{name} ({'; '.join(facts + extras)})"


def _file_hub(location: str | Path) -> str | None:
    import pandas as pd
    import pyarrow.parquet as pq

    from cityagent.hub.files import _fs, _table_files

    fs, root = _fs(location)
    root = root.rstrip("/")
    manifest_path = f"{root}/{MANIFEST}"
    if not fs.isfile(manifest_path):
        return None  # not a hub: the writers themselves refuse a non-empty directory without hub.json
    try:
        manifest = json.loads(fs.cat_file(manifest_path))
        manifest = manifest if isinstance(manifest, dict) else {}
    except (ValueError, OSError):
        manifest = {"name": "?", "source": f"unreadable {MANIFEST}"}
    found = {name: _table_files(fs, root, name) for name in TABLES}
    tables = sorted(name for name, files in found.items() if files)
    decisions, uncounted = 0, False
    for f in found["decisions"]:
        try:
            with fs.open(f, "rb") as fh:
                decisions += pq.ParquetFile(fh).metadata.num_rows if f.endswith(".parquet") else len(pd.read_csv(fh))
        except (OSError, ValueError):  # unreadable: still the agent's, so still named
            uncounted = True
    appended = sum(
        1
        for name, files in found.items()
        if name != "decisions"
        for f in files
        if APPENDED_PART.fullmatch(posixpath.basename(f))
    )
    extras = ["decisions that could not be counted"] if uncounted else []
    if appended:
        extras.append(f"{_plural(appended, 'appended part')} of live readings")
    rejected = f"{root}/{REJECTED}"
    if fs.isdir(rejected):
        n = len(fs.find(rejected))
        if n:
            extras.append(f"{_plural(n, 'file')} of rejected readings in {REJECTED}/")
    return _describe(manifest, tables, decisions, extras)


def _sql_hub(url: str, prefix: str) -> str | None:
    import sqlalchemy as sa

    from cityagent.hub.sql import META_TABLE, _engine

    engine = _engine(url)
    try:
        existing = set(sa.inspect(engine).get_table_names())
        tables = sorted(name for name in TABLES if prefix + name in existing)
        if prefix + META_TABLE not in existing and not tables:
            return None
        manifest = None
        with engine.connect() as conn:
            if prefix + META_TABLE in existing:
                row = conn.execute(sa.text(f'SELECT manifest FROM "{prefix}{META_TABLE}"')).scalar_one_or_none()
                try:
                    manifest = json.loads(row) if row else None
                except ValueError:
                    manifest = {"name": "?", "source": f"unreadable {prefix}{META_TABLE}"}
            decisions = 0
            if "decisions" in tables:
                decisions = conn.execute(sa.text(f'SELECT COUNT(*) FROM "{prefix}decisions"')).scalar_one()
    finally:
        engine.dispose()
    return _describe(manifest, [prefix + t for t in tables], int(decisions), [])


def _shown(url: str) -> str:
    import sqlalchemy as sa

    return sa.make_url(url).render_as_string(hide_password=True)


def existing_hub(location: str | Path, prefix: str = "") -> str | None:
    """What hub ``location`` (with ``prefix``, for SQL) already holds, in words; None when it holds none."""
    return _sql_hub(str(location), prefix) if is_sql_url(location) else _file_hub(location)


def check_replace(location: str | Path, prefix: str = "", force: bool = False, elsewhere: str = "--out") -> None:
    """Raise a HubError naming what is at ``location`` when it holds a hub and ``force`` is off.

    Args:
        location: the directory, fsspec URI or SQL URL about to be written.
        prefix: SQL only — the table-name prefix about to be written.
        force: replace an existing hub (the caller's ``--force``).
        elsewhere: how the command names its target, for the advice (``--out``, ``DEST``).
    """
    if force:
        return
    found = existing_hub(location, prefix)
    if found is None:
        from cityagent.hub.files import restore_hint

        hint = None if is_sql_url(location) else restore_hint(location)
        if hint:  # writing here would leave the kept hub hidden for good
            raise HubError(f"{location} does not exist, but {hint}; or pass --force to write a new hub anyway")
        return
    sql = is_sql_url(location)
    where = f"{_shown(str(location))} (prefix {prefix!r})" if sql else str(location)
    other = "another --prefix or database" if sql else f"another {elsewhere}"
    raise HubError(
        f"{where} already holds {found}; writing would replace all of it: pass --force to do so, or choose {other}"
    )
