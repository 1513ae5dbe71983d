"""AST-GCN context files for SZ-taxi: per-step weather codes and per-road POI categories.

Reference: Zhu et al., "AST-GCN: Attribute-Augmented Spatiotemporal Graph Convolutional Network for Traffic
Forecasting", IEEE Access 2021 (data in lehaifeng/T-GCN, AST-GCN/data).
"""

from pathlib import Path

import numpy as np
import pandas as pd

from cityagent.errors import HubError
from cityagent.hub.importers.csv_matrix import read_matrix


def _codes(a: np.ndarray, path: Path, what: str) -> np.ndarray:
    if np.isnan(a).any() or (a != np.round(a)).any():
        raise HubError(f"{what} {path} must hold whole category codes in every cell; fix the file")
    return a.astype(np.int64)


def read_weather(path: Path, ts: pd.DatetimeIndex) -> pd.DataFrame:
    """The weather table from a time × road code matrix whose rows are city-wide (all roads equal)."""
    codes = _codes(read_matrix(path, "weather CSV"), path, "weather CSV")  # [T, R]
    if codes.shape[0] != len(ts):
        raise HubError(f"weather CSV {path} has {codes.shape[0]} rows but the speed matrix has {len(ts)} steps")
    uneven = np.flatnonzero((codes != codes[:, :1]).any(axis=1))
    if len(uneven):
        raise HubError(f"weather CSV {path}: row {int(uneven[0]) + 1} differs between roads; weather must be city-wide")
    condition = pd.Series([f"w{c}" for c in codes[:, 0]], dtype=str)
    return pd.DataFrame({"ts": ts, "condition": condition})


def read_poi(path: Path, ids: list[str]) -> dict[str, int]:
    """POI category per road from a road × time matrix; rows beyond the first ``len(ids)`` are other roads."""
    codes = _codes(read_matrix(path, "POI CSV"), path, "POI CSV")  # [R, T]
    if codes.shape[0] < len(ids):
        raise HubError(f"POI CSV {path} has {codes.shape[0]} roads (rows) but the speed matrix has {len(ids)}")
    codes = codes[: len(ids)]
    varying = np.flatnonzero((codes != codes[:, :1]).any(axis=1))
    if len(varying):
        raise HubError(f"POI CSV {path}: road row {int(varying[0]) + 1} changes category over time; expected constant")
    return {sid: int(c) for sid, c in zip(ids, codes[:, 0], strict=True)}
