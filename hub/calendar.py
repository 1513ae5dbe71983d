"""Calendar features of a time index, read in the index's own (local) wall time."""

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from cityagent.errors import ConfigError

KINDS = {
    "tod": "time of day in [0, 1)",
    "dow": "day of week one-hot, 7 columns, Monday first",
    "dow_index": "day of week 0..6, Monday = 0",
    "hour": "hour of day one-hot, 24 columns",
    "holiday": "1 on the given holiday dates",
    "weekend": "1 on Saturday and Sunday",
}


def calendar_features(
    ts: pd.DatetimeIndex, kinds: Sequence[str] = ("tod", "dow"), holidays: Iterable[str] = ()
) -> tuple[np.ndarray, list[str]]:
    """Calendar columns for every timestamp.

    Args:
        ts: timestamps; timezone-aware ones are read in their own timezone's wall time.
        kinds: which features, in order: ``tod``, ``dow``, ``dow_index``, ``hour``, ``holiday``, ``weekend``.
        holidays: dates (``YYYY-MM-DD``) flagged by ``holiday``.

    Returns:
        ``(features [T, K] float32, names)``.
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ConfigError(f"unknown calendar feature(s) {unknown}; choose from {list(KINDS)}")
    wall = ts.tz_localize(None) if ts.tz is not None else ts
    dow = wall.day_of_week.to_numpy()
    cols: list[np.ndarray] = []
    names: list[str] = []
    for kind in kinds:
        if kind == "tod":
            seconds = (wall - wall.normalize()).total_seconds().to_numpy()
            cols.append((seconds / 86400.0)[:, None])
            names.append("tod")
        elif kind == "dow":
            cols.append(np.eye(7)[dow])
            names += [f"dow_{d}" for d in range(7)]
        elif kind == "dow_index":
            cols.append(dow[:, None].astype(np.float64))
            names.append("dow_index")
        elif kind == "hour":
            cols.append(np.eye(24)[wall.hour.to_numpy()])
            names += [f"hour_{h}" for h in range(24)]
        elif kind == "holiday":
            days = pd.DatetimeIndex(pd.to_datetime(list(holidays))).normalize() if holidays else pd.DatetimeIndex([])
            cols.append(wall.normalize().isin(days).astype(np.float64)[:, None])
            names.append("holiday")
        else:  # weekend
            cols.append((dow >= 5).astype(np.float64)[:, None])
            names.append("weekend")
    feats = np.concatenate(cols, axis=1) if cols else np.zeros((len(ts), 0))
    return feats.astype(np.float32), names
