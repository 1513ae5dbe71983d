"""Timestamp parsing for text sources (CSV, SQLite), what to say when it fails, and step inference for hubs without a
manifest."""

import datetime
import re

import numpy as np
import pandas as pd

from cityagent.hub.hub import HubMeta

OFFSET = re.compile(r"(?:[+-]\d\d:?\d\d|Z)$")  # the UTC offset that ends ISO-8601 text


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
            if not text.str.contains(OFFSET, regex=True).all():
                return col
            parsed = pd.to_datetime(col, format="ISO8601", utc=True)
        except (ValueError, TypeError):
            return col
    if isinstance(parsed.dtype, pd.DatetimeTZDtype) and timezone:
        parsed = parsed.dt.tz_convert(timezone)
    return parsed


def utc_offset(value: object) -> str | None:
    """The UTC offset a timestamp (text or object) carries, e.g. ``'+08:00'``; None when it has none."""
    if isinstance(value, str):
        m = OFFSET.search(value.strip())
        return m.group(0) if m else None
    if isinstance(value, pd.Timestamp | datetime.datetime) and value.tzinfo is not None:
        return pd.Timestamp(value).isoformat()[-6:]
    return None


def offset_minutes(text: pd.Series) -> np.ndarray:
    """The UTC offset each timestamp text writes, in minutes (NaN where it writes none); read before parsing,
    which keeps only the instants."""
    if not (pd.api.types.is_object_dtype(text.dtype) or pd.api.types.is_string_dtype(text.dtype)):
        return np.full(len(text), np.nan)
    tails = text.astype(str).str.strip().str[-6:]  # '+08:00', '+0800' or 'Z' end ISO-8601 text
    minutes = {}
    for tail in tails.unique():
        m = OFFSET.search(tail)
        if m is None:
            minutes[tail] = np.nan
        elif m.group(0) == "Z":
            minutes[tail] = 0.0
        else:
            sign, digits = m.group(0)[0], m.group(0)[1:].replace(":", "")
            minutes[tail] = (-1 if sign == "-" else 1) * (int(digits[:2]) * 60 + int(digits[2:]))
    return tails.map(minutes).to_numpy(dtype=float)


def _offset_text(minutes: float) -> str:
    sign, m = ("-" if minutes < 0 else "+"), int(abs(minutes))
    return f"{sign}{m // 60:02d}:{m % 60:02d}"


def zone_mismatch(ts: pd.Series, written: np.ndarray, timezone: str) -> str | None:
    """What to say when no written UTC offset is ``timezone``'s at its instant, or None.

    Instants are kept whatever the zone, but times of day, weekdays and date partitions follow the manifest's
    zone, so +08:00 data under Europe/London would shift every calendar feature by 8 hours. All-UTC text is a
    common way to store any city's readings, so it passes.

    Args:
        ts: the parsed timestamps (timezone-aware).
        written: the offsets the text wrote, minutes (``offset_minutes``).
        timezone: the manifest's IANA zone.
    """
    has = ~np.isnan(written)
    if not has.any() or (written[has] == 0).all():
        return None
    utc = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    zone = ((ts.dt.tz_convert(timezone).dt.tz_localize(None) - utc) / pd.Timedelta("1min")).to_numpy()
    if (written[has] == zone[has]).any():
        return None
    rows = np.flatnonzero(has & (written != 0) & ~np.isnan(zone))
    if not len(rows):
        return None
    row = int(rows[0])
    example = ts.iloc[row].tz_convert(datetime.timezone(datetime.timedelta(minutes=written[row]))).isoformat()
    return (
        f"the timestamps carry UTC offset {_offset_text(written[row])} (e.g. {example}) but hub.json timezone "
        f"{timezone} is {_offset_text(zone[row])} then; the instants are kept, but times of day, weekdays and "
        f"date partitions follow {timezone}: set timezone to the city's zone"
    )


def text_ts_problem(s: pd.Series, problem: str, timezone: str) -> tuple[str, int | None]:
    """Why a ``ts`` column stayed text, and the row: its first value that is no timestamp or lacks a UTC offset.

    Args:
        s: the column as read.
        problem: what to say when no single value is to blame.
        timezone: the hub's IANA zone, for the offset in the hint when no value has one.
    """
    unparsable = pd.to_datetime(s, errors="coerce", format="ISO8601", utc=True).isna() & s.notna()
    if unparsable.any():
        row = int(np.flatnonzero(unparsable.to_numpy())[0])
        return f"{problem} (first bad value {s.iloc[row]!r})", row
    offsets = s.map(utc_offset)
    naive = (offsets.isna() & s.notna()).to_numpy()
    if not naive.any():
        return problem, None
    row = int(np.flatnonzero(naive)[0])
    value = s.iloc[row]
    offset = offsets.dropna().iloc[0] if offsets.notna().any() else None
    if offset is None:
        try:  # no value to copy the offset from: the hub's timezone says it
            offset = pd.Timestamp(value).tz_localize(timezone).isoformat()[-6:]
        except (ValueError, TypeError, KeyError):
            offset = "+08:00"
    return (
        f"holds {int(naive.sum())} timestamp(s) without a UTC offset (first {value!r}); "
        f"write every timestamp with its offset, e.g. {str(value) + offset!r}",
        row,
    )


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
