"""Validate a hub against the table contracts; report, never repair.

Errors: missing or extra columns, wrong types, NaN/inf where values are required, duplicate keys,
non-monotonic or off-grid timestamps, out-of-range values, ids unknown to the static tables.
Warnings: gaps in a series, tables that cannot be cross-checked, a manifest that had to be inferred.
"""

from dataclasses import replace

import numpy as np
import pandas as pd

from cityagent.errors import HubError
from cityagent.hub.hub import Hub
from cityagent.hub.references import check_references
from cityagent.hub.report import Issue, Report
from cityagent.hub.schema import TABLES, Column, TableSchema, table_schema
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


def _type_problem(s: pd.Series, col: Column) -> str | None:
    """Why ``s`` does not hold ``col.kind`` values, or None when it does."""
    dt = s.dtype
    if col.kind in ("id", "str"):
        all_str = not pd.api.types.is_object_dtype(dt) or s.dropna().map(type).eq(str).all()
        if pd.api.types.is_string_dtype(dt) and all_str:
            return None
        return f"has dtype {dt}; {col.kind}s must be strings — cast with .astype(str)"
    if col.kind == "ts":
        if isinstance(dt, pd.DatetimeTZDtype):
            return None
        if pd.api.types.is_datetime64_dtype(dt):
            return "is timezone-naive; localise it (.dt.tz_localize('Asia/Shanghai')) or write ISO-8601 with offsets"
        return f"has dtype {dt}, not timestamps; write ISO-8601 timestamps with a UTC offset"
    if col.kind == "float":
        ok = pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_bool_dtype(dt)
        return None if ok else f"has dtype {dt}; it must be numeric"
    if col.kind == "int":
        return None if pd.api.types.is_integer_dtype(dt) else f"has dtype {dt}; it must be integers"
    if col.kind == "bool":
        return None if pd.api.types.is_bool_dtype(dt) else f"has dtype {dt}; it must be true/false"
    return None


def _check_table(report: Report, name: str, df: pd.DataFrame, schema: TableSchema, timezone: str) -> set[str]:
    """Column, type, null, range and key checks; returns the columns whose type is usable."""
    cols = set(df.columns)
    for c in schema.required:
        if c not in cols:
            report.add("error", name, f"missing required column {c!r}; {name} needs {schema.required}", column=c)
    for c in sorted(cols - set(schema.names)):
        report.add("error", name, f"unexpected column {c!r}; {name} holds only {schema.names}", column=c)
    if schema.one_of and not any(all(c in cols for c in group) for group in schema.one_of):
        groups = " or ".join("(" + ", ".join(g) + ")" for g in schema.one_of)
        report.add("error", name, f"needs the columns {groups}")
    usable = set()
    for col in schema.columns:
        if col.name not in cols:
            continue
        s = df[col.name]
        problem = _type_problem(s, col)
        if problem:
            bad = s.map(lambda v: not isinstance(v, str)) if col.kind in ("id", "str") else None
            row = _first(bad) if bad is not None and bad.any() else None
            if col.kind == "ts" and not pd.api.types.is_datetime64_any_dtype(s.dtype):
                problem, row = text_ts_problem(s, problem, timezone)
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
    key = [k for k in schema.key if k in cols]
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
    shown = [(c, v.item() if isinstance(v := df[c].iloc[issue.row], np.generic) else v) for c in cols]
    at = ", ".join(f"{c}={v.isoformat() if isinstance(v, pd.Timestamp) else repr(v)}" for c, v in shown)
    return replace(issue, at=at or None)


def _summary(df: pd.DataFrame, schema: TableSchema) -> dict[str, object]:
    out: dict[str, object] = {"rows": len(df)}
    if schema.node_column and schema.node_column in df:
        out["ids"] = int(df[schema.node_column].nunique())
    if "ts" in df and isinstance(df["ts"].dtype, pd.DatetimeTZDtype) and len(df):
        out["from"], out["to"] = str(df["ts"].min()), str(df["ts"].max())
    return out


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
    for name, df in hub.tables.items():
        schema = table_schema(name)
        usable = _check_table(report, name, df, schema, meta.timezone)
        report.tables[name] = _summary(df, schema)
        timeline = step is not None and not zone  # slots and gaps are counted in the city's local time
        if schema.temporal and "ts" in usable and timeline and name not in ("incidents", "decisions"):
            check_timeline(report, name, df, schema, step, meta)
    check_references(report, hub)
    report.issues = [_locate(issue, hub.tables) for issue in report.issues]
    return report
