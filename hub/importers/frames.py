"""Dense arrays → hub long tables, and regular time axes in a city's timezone."""

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cityagent.errors import HubError


def regular_ts(start: str | pd.Timestamp, periods: int, step: str, timezone: str) -> pd.DatetimeIndex:
    """``periods`` timestamps ``step`` apart from ``start`` (local wall time, or aware and converted).

    Args:
        start: first timestamp; naive values are read as wall time in ``timezone``.
        periods: number of steps.
        step: pandas offset alias, e.g. ``'15min'``.
        timezone: IANA zone name.
    """
    try:
        first = pd.Timestamp(start)
        first = first.tz_convert(timezone) if first.tzinfo else first.tz_localize(timezone, nonexistent="raise")
        return pd.date_range(first, periods=periods, freq=step).as_unit("ns")
    except (ValueError, TypeError) as e:
        raise HubError(
            f"cannot build {periods} timestamps from start={start!r} step={step!r} in {timezone}: {e}"
        ) from e


def dense_to_long(
    ts: pd.DatetimeIndex,
    ids: Sequence[str],
    id_column: str,
    values: dict[str, np.ndarray],
    keep: np.ndarray | None = None,
) -> pd.DataFrame:
    """A long table, time-major (all nodes at ts[0], then ts[1], ...), from arrays shaped ``[T, N]``.

    Args:
        ts: the T timestamps.
        ids: the N node ids, in the arrays' column order.
        id_column: ``sensor_id`` or ``zone_id``.
        values: column name → ``[T, N]`` array, stored as float64.
        keep: optional ``[T, N]`` bool; False cells become absent rows (missing readings).
    """
    t, n = len(ts), len(ids)
    for name, arr in values.items():
        if arr.shape != (t, n):
            raise HubError(f"column {name}: array shape {arr.shape} does not match [T={t}, N={n}]")
    id_col = np.tile(np.asarray(ids, dtype=object), t)  # [T*N]
    ts_col = ts.as_unit("ns").repeat(n)  # [T*N], keeps the timezone
    cols = {name: np.asarray(arr, dtype=np.float64).reshape(-1) for name, arr in values.items()}
    if keep is not None:
        flat = keep.reshape(-1)
        id_col, ts_col = id_col[flat], ts_col[flat]
        cols = {name: col[flat] for name, col in cols.items()}
    return pd.DataFrame({id_column: pd.Series(id_col, dtype=str), "ts": ts_col, **cols})


def matrix_edges(ids: Sequence[str], adj: np.ndarray, kind: str) -> pd.DataFrame:
    """Directed edges ``ids[i] → ids[j]`` for every non-zero ``adj[i, j]`` (row-major), weight as given."""
    src, dst = np.nonzero(adj)
    ids_arr = np.asarray(ids, dtype=object)
    return pd.DataFrame(
        {
            "src": pd.Series(ids_arr[src], dtype=str),
            "dst": pd.Series(ids_arr[dst], dtype=str),
            "weight": adj[src, dst].astype(np.float64),
            "kind": pd.Series([kind] * len(src), dtype=str),
        }
    )


def concat_edges(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Edge tables of several kinds as one table (empty with the schema's columns if there are none)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(
            {
                "src": pd.Series(dtype=str),
                "dst": pd.Series(dtype=str),
                "weight": pd.Series(dtype=np.float64),
                "kind": pd.Series(dtype=str),
            }
        )
    return pd.concat(parts, ignore_index=True)
