"""Validate a hub against the table contracts; report, never repair.

Errors: missing or extra columns, wrong types, NaN/inf where values are required, duplicate keys,
non-monotonic or off-grid timestamps, out-of-range values, ids unknown to the static tables.
Warnings: gaps in a series, tables that cannot be cross-checked, a manifest that had to be inferred, coordinates
the manifest says are not real (``extra['coordinates_note']``).
"""

from dataclasses import replace

import numpy as np
import pandas as pd

from cityagent.errors import HubError
from cityagent.hub.hub import Hub, Origin, stray_table
from cityagent.hub.references import check_references
from cityagent.hub.report import Issue, Report
from cityagent.hub.schema import TABLES, Column, TableSchema, table_schema
from cityagent.hub.step_check import STEP_TABLES, check_step
from cityagent.hub.timeline import check_timeline
from cityagent.hub.timestamps import text_ts_problem

# column -> inclusive (low, high) from the table contracts; live readings are checked against the same bounds
RANGES = {c.name: c.bounds for t in TABLES.values() for c in t.columns if c.bounds}
NON_NEGATIVE = {name for name, (lo, _) in RANGES.items() if lo >= 0}


def _first(mask: np.ndarray | pd.Series) -> int:
    return int(np.flatnonzero(np.asarray(mask))[0])


def _number(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:g}"


def _check_bounds(report: Report, name: str, s: pd.Series, col: Column) -> None:
    """Negative and out-of-range values of a measured column, each reported with the first one."""
    lo, hi = col.bounds or (-np.inf, np.inf)
    v = s.to_numpy(dtype=float, na_value=np.nan)
    finite = np.isfinite(v)  # NaN/inf are reported as such
    neg = finite & (v < 0) if lo >= 0 else np.zeros(len(v), dtype=bool)
    out = finite & ~neg & ((v < lo) | (v > hi))
    unit = f" {col.unit}" if col.unit else ""
    for mask, what, todo in (
        (neg, f"negative value(s) in {col.name!r}", "fix or remove those readings"),
        (
            out,
            f"value(s) of {col.name!r} outside [{_number(lo)}, {_number(hi)}]{unit}",
            "check the unit or remove them",
        ),
    ):
        if mask.any():
            row, n = _first(mask), int(mask.sum())
            report.add("error", name, f"{n} {what} (first {v[row]:g}); {todo}", column=col.name, row=row, count=n)


def _type_problem(s: pd.Series, col: Column, sql: bool = False, timezone: str = "Asia/Shanghai") -> str | None:
    """Why ``s`` does not hold ``col.kind`` values, or None when it does; ``sql`` words the fix for SQL hubs,
    ``timezone`` (the hub's) the one for naive timestamps."""
    dt = s.dtype
    if col.kind in ("id", "str"):
        all_str = not pd.api.types.is_object_dtype(dt) or s.dropna().map(type).eq(str).all()
        if pd.api.types.is_string_dtype(dt) and all_str:
            return None
        fix = "store the column as text (or cast it in SQL)" if sql else "cast with .astype(str)"
        return f"has dtype {dt}; {col.kind}s must be strings — {fix}"
    if col.kind == "ts":
        if isinstance(dt, pd.DatetimeTZDtype):
            return None
        if pd.api.types.is_datetime64_dtype(dt):
            if sql:
                return "is timezone-naive; store it as timestamp with time zone (or ISO-8601 text with offsets)"
            return f"is timezone-naive; localise it (.dt.tz_localize({timezone!r})) or write ISO-8601 with offsets"
        return f"has dtype {dt}, not timestamps; write ISO-8601 timestamps with a UTC offset"
    if col.kind == "float":
        ok = pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_bool_dtype(dt)
        return None if ok else f"has dtype {dt}; it must be numeric"
    if col.kind == "int":
        return None if pd.api.types.is_integer_dtype(dt) else f"has dtype {dt}; it must be integers"
    if col.kind == "bool":
        return None if pd.api.types.is_bool_dtype(dt) else f"has dtype {dt}; it must be true/false"
    return None


def _not_a_number(s: pd.Series, problem: str, sql: bool) -> tuple[str, int | None]:
    """``problem`` with the first value of ``s`` that is no number (``'fast'``, ``'45.5 km/h'``), and its row."""
    if pd.api.types.is_numeric_dtype(s.dtype):  # ints where floats belong, or floats where ints do
        return problem, None
    bad = (pd.to_numeric(s, errors="coerce").isna() & s.notna()).to_numpy()
    if not bad.any():
        return problem, None
    row = _first(bad)
    value = _plain(s.iloc[row])
    fix = "fix it in SQL or cast the column to a number" if sql else "write plain numbers, without units or text"
    return f"{problem} (first bad value {value!r}); {fix}", row


def _plain(v: object) -> object:
    """``np.int64(1)`` as ``1``: numpy scalars print their type since numpy 2."""
    return v.item() if isinstance(v, np.generic) else v


# tables that must hold rows; an empty edge list, incident log or decision log is a fact, not a fault
MUST_HAVE_ROWS = ("traffic", "demand", "weather", "sensors", "zones")


def _check_table(
    report: Report, name: str, df: pd.DataFrame, schema: TableSchema, timezone: str, origin: Origin | None = None
) -> set[str]:
    """Column, type, null, range and key checks; returns the columns whose type is usable."""
    cols = set(df.columns)
    sql = origin is not None and origin.kind == "sql"
    for c in schema.required:
        if c not in cols:
            report.add("error", name, f"missing required column {c!r}; {name} needs {schema.required}", column=c)
    for c in sorted(cols - set(schema.names)):
        report.add("error", name, f"unexpected column {c!r}; {name} holds only {schema.names}", column=c)
    if schema.one_of and not any(all(c in cols for c in group) for group in schema.one_of):
        groups = " or ".join("(" + ", ".join(g) + ")" for g in schema.one_of)
        report.add("error", name, f"needs the columns {groups}")
    if df.empty:  # its columns' dtypes say nothing, so no type errors either
        where = f" ({origin.tables[name]})" if origin and name in origin.tables else ""
        level = "error" if name in MUST_HAVE_ROWS else "warning"
        report.add(level, name, f"table {name}{where} has no rows; add its readings or remove it")
        return set()
    usable = set()
    for col in schema.columns:
        if col.name not in cols:
            continue
        s = df[col.name]
        problem = _type_problem(s, col, sql, timezone)
        if problem:
            bad = s.map(lambda v: not isinstance(v, str)) if col.kind in ("id", "str") else None
            row = _first(bad) if bad is not None and bad.any() else None
            if col.kind == "ts" and not pd.api.types.is_datetime64_any_dtype(s.dtype):
                problem, row = text_ts_problem(s, problem, timezone)
            if col.kind in ("float", "int"):
                problem, row = _not_a_number(s, problem, sql)
            report.add("error", name, f"column {col.name!r} {problem}", column=col.name, row=row)
            continue
        usable.add(col.name)
        null = s.isna().to_numpy().copy()
        if col.kind == "float":
            null |= np.isinf(s.to_numpy(dtype=float, na_value=np.nan))
        if null.any() and not col.nullable:
            # imputation fills absent rows (the gaps of the step grid), never a stored NaN: say what works
            todo = (
                "drop those rows: a missing reading is an absent row, which task.params.impute (ffill, zero, "
                "mean) fills when training"
                if schema.temporal and name not in ("incidents", "decisions")
                else "fix or remove those rows"
            )
            report.add(
                "error",
                name,
                f"{int(null.sum())} NaN/inf value(s) in {col.name!r}; {todo}",
                column=col.name,
                row=_first(null),
                count=int(null.sum()),
            )
        if col.bounds and pd.api.types.is_numeric_dtype(s):
            _check_bounds(report, name, s, col)
    # with a required key column missing, "duplicates" of the rest would blame the wrong thing
    key = [k for k in schema.key if k in cols or schema.column(k).required]
    if key and set(key) <= usable:
        dup = df.duplicated(subset=key, keep="first").to_numpy()
        if dup.any():
            report.add(
                "error",
                name,
                f"{int(dup.sum())} duplicate ({', '.join(key)}) row(s); keep one reading per key",
                row=_first(dup),
                count=int(dup.sum()),
            )
    return usable


def _locate(issue: Issue, tables: dict[str, pd.DataFrame]) -> Issue:
    """``issue`` with its row named by key (``sensor_id='s3', ts=...``): row numbers alone mislead in SQL hubs."""
    df = tables.get(issue.table)
    if issue.row is None or df is None or not 0 <= issue.row < len(df):
        return issue
    schema = TABLES[issue.table]
    cols = [c for c in dict.fromkeys(schema.key or (schema.node_column, "ts")) if c in df and c != issue.column]
    shown = [(c, _plain(df[c].iloc[issue.row])) for c in cols]
    at = ", ".join(f"{c}={v.isoformat() if isinstance(v, pd.Timestamp) else repr(v)}" for c, v in shown)
    return replace(issue, at=at or None)


def _summary(df: pd.DataFrame, schema: TableSchema) -> dict[str, object]:
    out: dict[str, object] = {"rows": len(df)}
    if schema.node_column and schema.node_column in df:
        out["ids"] = int(df[schema.node_column].nunique())
    if "ts" in df and isinstance(df["ts"].dtype, pd.DatetimeTZDtype) and len(df):
        out["from"], out["to"] = str(df["ts"].min()), str(df["ts"].max())
    return out


def _stray_message(entry: str) -> str:
    table = stray_table(entry)
    if table is None:
        return f"{entry} is not a hub table, so it is not read; hub tables are {', '.join(TABLES)}"
    if entry.rstrip("/").split(".", 1)[0] == table:  # the right name in a format the reader skips
        return f"{entry} is not read: table {table} is read from {table}.csv, {table}.parquet or a {table}/ folder"
    return f"{entry} is not a hub table: did you mean {table}? It is not read until renamed"


def validate_hub(hub: Hub) -> Report:
    """Check every table of ``hub`` and the links between them."""
    report = Report()
    meta = hub.meta
    try:
        step = meta.step_delta
    except HubError as e:
        report.add("error", "hub.json", str(e))
        step = None
    zone = meta.timezone_problem()
    if zone:
        report.add("error", "hub.json", zone)
    if meta.extra.get("manifest") == "inferred":
        report.add("warning", "hub.json", f"no manifest: assumed step {meta.step}, timezone {meta.timezone}")
    if not hub.tables:
        report.add("error", "hub", "the hub has no tables")
    if meta.extra.get("coordinates_note"):  # an importer found lat/lon that are not where the city is
        report.add("warning", "zones", str(meta.extra["coordinates_note"]), column="lat")
    origin = hub.origin
    if origin is not None:  # "line N" only where the table is one CSV file: SQL rows and Parquet have no lines
        report.line_of = {
            name: f"of {origin.tables[name]}"
            if origin.kind == "files" and origin.tables.get(name, "").endswith(".csv")
            else None
            for name in hub.tables
        }
    for stray in origin.strays if origin else ():
        report.add("warning", "hub", _stray_message(stray))
    for table, column, message in origin.warnings if origin else ():
        report.add("warning", table, message, column=column)
    for name, df in hub.tables.items():
        schema = table_schema(name)
        usable = _check_table(report, name, df, schema, meta.timezone, origin)
        report.tables[name] = _summary(df, schema)
        timeline = step is not None and not zone  # slots and gaps are counted in the city's local time
        if schema.temporal and "ts" in usable and timeline and name not in ("incidents", "decisions"):
            if name in STEP_TABLES:
                check_step(report, name, df, schema, step, meta)
            check_timeline(report, name, df, schema, step, meta)
    check_references(report, hub)
    report.issues = [_locate(issue, hub.tables) for issue in report.issues]
    return report
