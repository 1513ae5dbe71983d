"""Timestamp parsing for text sources (CSV, SQLite) and step inference for hubs without a manifest."""

import pandas as pd

from cityagent.hub.hub import HubMeta


def parse_ts_column(col: pd.Series, timezone: str | None = None) -> pd.Series:
    """Parse ISO-8601 text to timestamps, keeping what cannot be parsed as text for validation to report.

    Offsets are honoured; mixed offsets (DST) are unified in ``timezone`` (or UTC). Text without an offset stays
    timezone-naive — never assumed to be UTC — so validation can say so.
    """
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return col.dt.tz_convert(timezone) if timezone else col
    if pd.api.types.is_datetime64_dtype(col.dtype):
        return col
    try:
        parsed = pd.to_datetime(col, format="ISO8601")
    except (ValueError, TypeError):
        try:  # mixed UTC offsets across a DST change parse only as UTC
            text = col.astype(str)
            if not text.str.contains(r"(?:[+-]\d\d:?\d\d|Z)$", regex=True).all():
                return col
            parsed = pd.to_datetime(col, format="ISO8601", utc=True)
        except (ValueError, TypeError):
            return col
    if isinstance(parsed.dtype, pd.DatetimeTZDtype) and timezone:
        parsed = parsed.dt.tz_convert(timezone)
    return parsed


def _iana(tz: object) -> str:
    """An IANA name for a parsed zone; fixed whole-hour offsets from CSV text map to ``Etc/GMT±h``."""
    offset = pd.Timestamp("2000-01-01", tz=tz).utcoffset()
    name = str(tz)
    if not name.startswith("UTC") or offset is None:
        return name
    hours, rest = divmod(int(offset.total_seconds()), 3600)
    if rest:
        return "UTC"
    return "UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"  # POSIX sign: Etc/GMT-1 is UTC+01:00


def infer_meta(tables: dict[str, pd.DataFrame], name: str) -> HubMeta:
    """A manifest for a hub that came without one: the most common step and the data's own timezone."""
    step, tz = "1h", "UTC"
    for tname in ("traffic", "demand", "weather"):
        df = tables.get(tname)
        if df is None or "ts" not in df or not isinstance(df["ts"].dtype, pd.DatetimeTZDtype) or len(df) < 2:
            continue
        tz = _iana(df["ts"].dt.tz)
        diffs = pd.Series(df["ts"].drop_duplicates().sort_values().diff().dropna())
        if not diffs.empty:
            step = pd.tseries.frequencies.to_offset(diffs.mode().iloc[0]).freqstr
        break
    return HubMeta(name=name, step=step, timezone=tz, source="inferred: no hub.json", extra={"manifest": "inferred"})
