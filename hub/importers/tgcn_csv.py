"""T-GCN style speed matrices (SZ-taxi, Los-loop): a time × road CSV plus an N×N adjacency CSV.

Reference: Zhao et al., "T-GCN: A Temporal Graph Convolutional Network for Traffic Prediction", IEEE T-ITS
2020. Zeros in these matrices mean "no reading" (shared/data/traffic/SOURCES.md), so by default they become
absent rows; ``meta.extra['zeros_as_missing']`` tells windowing to put zeros back for the published protocol.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from cityagent.errors import ConfigError, HubError
from cityagent.hub.hub import Hub, HubMeta
from cityagent.hub.importers.archives import require_file, wrong_importer
from cityagent.hub.importers.csv_matrix import read_matrix, read_text_table, to_numbers
from cityagent.hub.importers.frames import concat_edges, dense_to_long, matrix_edges, regular_ts
from cityagent.hub.importers.tgcn_context import read_poi, read_weather
from cityagent.hub.importers.tgcn_sidefiles import refuse_non_speeds

DATE_COLUMNS = ("date", "time", "timestamp", "datetime")


def _time_axis(
    dates: pd.Series | None, start: str | None, periods: int, step: str, tz: str, path: Path, has_header: bool
) -> pd.DatetimeIndex:
    """The regular time axis: from the file's date column (checked against ``step``) or from ``start``."""
    if dates is None:
        if start is None and not has_header:
            raise ConfigError(
                f"{path} has no header row of road ids (its first row is numbers) and no date column, unlike a "
                f"T-GCN speed CSV (sz_speed.csv starts `date,90217,...`): pass the speed CSV, or, if this file "
                f"is a speed matrix without a header, pass start= (e.g. start='2015-01-01 00:00')"
            )
        if start is None:
            raise ConfigError(f"{path} has no date column; pass start= (e.g. start='2015-01-01 00:00')")
        return regular_ts(start, periods, step, tz)
    try:
        parsed = pd.DatetimeIndex(pd.to_datetime(dates.str.strip()))
        parsed = parsed.tz_localize(tz, nonexistent="raise", ambiguous="raise") if parsed.tz is None else parsed
    except (ValueError, TypeError) as e:
        raise HubError(f"{path}: column {dates.name!r} is not parseable as dates ({e}); fix it or drop it") from e
    axis = regular_ts(parsed[0], periods, step, tz)
    bad = np.flatnonzero(parsed != axis)
    if len(bad):
        i = int(bad[0])
        raise HubError(
            f"{path}: row {i + 2} date {dates.iloc[i]!r} breaks the regular {step} axis from {parsed[0]}; "
            f"fix the date column or pass the right step="
        )
    if start is not None and regular_ts(start, 1, step, tz)[0] != axis[0]:
        raise ConfigError(f"start={start!r} disagrees with the file's first date {dates.iloc[0]!r}; drop start=")
    return axis


def import_tgcn_csv(
    path: str | Path,
    adj: str | Path | None = None,
    start: str | None = None,
    step: str = "15min",
    timezone: str = "Asia/Shanghai",
    name: str | None = None,
    zeros_missing: bool = True,
    header: bool | None = None,
    weather: str | Path | None = None,
    poi: str | Path | None = None,
) -> Hub:
    """A traffic hub from a T-GCN speed matrix.

    Args:
        path: CSV, rows = time steps, columns = roads; an optional header of road ids and an optional
            ``date`` column (naive local wall time).
        adj: N×N (or larger: its top-left N×N block is used) headerless adjacency CSV, 0/1 or weights;
            every non-zero becomes a directed ``road`` edge.
        start: first timestamp (local wall time) when the file has no date column.
        step: reading interval, pandas alias (default 15 minutes).
        timezone: IANA zone of the city (default Asia/Shanghai).
        name: hub name (default: the file's stem).
        zeros_missing: zeros are missing readings and become absent rows (counted in
            ``extra['missing_readings']``); False keeps them as readings of 0 km/h.
        header: whether the first row is a header; None detects it (road ids are distinct integers).
        weather: optional AST-GCN ``sz_weather.csv`` (time × road category codes 1..5) → weather
            ``condition`` 'w1'..'w5'.
        poi: optional AST-GCN ``sz_poi.csv`` (road × time POI codes) → ``extra['poi_category']``.
    """
    path = require_file(path, "speed matrix")
    other = wrong_importer(path, "tgcn-csv")  # a Parquet file, an archive or a hub table, not a matrix
    if other:
        raise HubError(other)
    df = read_text_table(path, header, "speed matrix")
    has_header = not all(isinstance(c, int) for c in df.columns)
    date_cols = [c for c in df.columns if str(c).strip().lower() in DATE_COLUMNS] if has_header else []
    dates = df.pop(date_cols[0]) if date_cols else None
    ids = [str(c).strip() for c in df.columns] if has_header else [str(j) for j in range(df.shape[1])]
    if len(set(ids)) != len(ids):
        raise HubError(f"speed matrix {path}: the header repeats road ids; each column must be one road")
    speed = to_numbers(df, path, "speed matrix", header_rows=int(has_header))  # [T, N]
    refuse_non_speeds(speed, path, has_header)
    ts = _time_axis(dates, start, len(df), step, timezone, path, has_header)
    present = ~np.isnan(speed)
    zeros = present & (speed == 0)
    keep = present & ~zeros if zeros_missing else present
    tables = {
        "traffic": dense_to_long(ts, ids, "sensor_id", {"speed": speed}, keep=keep),
        "sensors": pd.DataFrame({"sensor_id": pd.Series(ids, dtype=str)}),
    }
    extra: dict = {
        "importer": "tgcn-csv",
        "files": {"speed": path.name},
        "start": ts[0].isoformat(),
        "steps": len(ts),
        "zeros_as_missing": bool(zeros_missing),
        "missing_readings": int(keep.size - keep.sum()),
        "empty_cells": int((~present).sum()),
    }
    if adj is not None:
        tables["edges"] = concat_edges([matrix_edges(ids, _adjacency(adj, len(ids), extra), "road")])
    if weather is not None:
        tables["weather"] = read_weather(require_file(weather, "weather CSV"), ts)
        extra["files"]["weather"] = Path(weather).name
    if poi is not None:
        extra["poi_category"] = read_poi(require_file(poi, "POI CSV"), ids)
        extra["files"]["poi"] = Path(poi).name
    meta = HubMeta(name=name or path.stem, step=step, timezone=timezone, source=f"tgcn-csv:{path}", extra=extra)
    return Hub(tables, meta)


def _adjacency(adj: str | Path, n: int, extra: dict) -> np.ndarray:
    """The N×N adjacency: the whole square matrix, or the top-left block of a larger one (SZ subsets)."""
    p = require_file(adj, "adjacency CSV")
    a = read_matrix(p, "adjacency CSV")
    if a.shape[0] != a.shape[1] or a.shape[0] < n:
        raise HubError(
            f"adjacency CSV {p} is {a.shape[0]}×{a.shape[1]} but the speed matrix has {n} roads; "
            f"give a square matrix with at least {n} rows (its top-left {n}×{n} block is used)"
        )
    if np.isnan(a).any():
        raise HubError(f"adjacency CSV {p} has empty cells; fill them with 0 (no edge) or a weight")
    extra["files"]["adj"] = p.name
    extra["adjacency"] = {"shape": list(a.shape), "block": n}
    return a[:n, :n]
