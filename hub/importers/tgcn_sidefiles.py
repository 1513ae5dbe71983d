"""Recognise a T-GCN side file (adjacency, AST-GCN weather or POI codes) passed where the speed CSV belongs.

SZ-taxi ships ``sz_adj.csv`` (156×156, 0/1), ``sz_weather.csv`` (time × road, one code 1..5 per row) and
``sz_poi.csv`` (road × time, one code 1..8 per row) beside ``sz_speed.csv``; all are headerless numbers, so each
would otherwise import as a "speed matrix" once given ``start=``.
"""

from pathlib import Path

import numpy as np

from cityagent.errors import HubError

SPEED_FILE = "the speed CSV (rows = time steps, columns = roads, e.g. sz_speed.csv)"


def refuse_non_speeds(values: np.ndarray, path: Path, has_header: bool) -> None:
    """Raise a HubError naming what ``values`` ([rows, columns] of ``path``) looks like when it is no speed matrix."""
    rows, cols = values.shape
    present = values[~np.isnan(values)]
    if rows == cols > 1 and present.size and np.isin(present, (0.0, 1.0)).all():
        raise HubError(
            f"{path} looks like an adjacency matrix ({rows}×{cols}, every value 0 or 1), not road speeds: "
            f"pass {SPEED_FILE} as the source and this file as --adj {path}"
        )
    if has_header or cols < 2 or np.isnan(values).any():
        return
    whole = (values == np.round(values)).all()
    if whole and (values == values[:, :1]).all():
        what, option = (
            ("weather codes (time × road, like sz_weather.csv)", "weather")
            if rows >= cols
            else ("POI codes (road × time, like sz_poi.csv)", "poi")
        )
        raise HubError(
            f"{path} looks like AST-GCN {what}: headerless, one whole number repeated across each row, not road "
            f"speeds; pass {SPEED_FILE} as the source and this file as --set {option}={path}"
        )
