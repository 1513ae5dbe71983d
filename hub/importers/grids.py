"""Gridded cities: cell ids, the zones table and 4-neighbour edges."""

import numpy as np
import pandas as pd


def cell_id(row: int, col: int) -> str:
    """Zone id of a grid cell, e.g. ``r03c17``."""
    return f"r{row:02d}c{col:02d}"


def grid_cell_ids(rows: int, cols: int) -> list[str]:
    """Cell ids in row-major order (the order of ``array.reshape(..., rows * cols)``)."""
    return [cell_id(r, c) for r in range(rows) for c in range(cols)]


def grid_zones(rows: int, cols: int, ids: list[str] | None = None) -> pd.DataFrame:
    """The zones table of a ``rows × cols`` grid, row-major; ``ids`` overrides the ``rXXcYY`` names."""
    r, c = np.divmod(np.arange(rows * cols, dtype=np.int64), cols)
    ids = ids if ids is not None else grid_cell_ids(rows, cols)
    return pd.DataFrame({"zone_id": pd.Series(ids, dtype=str), "row": r, "col": c})


def grid_edges(rows: int, cols: int, ids: list[str] | None = None) -> pd.DataFrame:
    """Directed 4-neighbour edges (both directions, weight 1, kind ``neighbor``) between row-major cells."""
    ids_arr = np.asarray(ids if ids is not None else grid_cell_ids(rows, cols), dtype=object)
    idx = np.arange(rows * cols).reshape(rows, cols)
    pairs = [
        (idx[:, :-1], idx[:, 1:]),  # east
        (idx[:, 1:], idx[:, :-1]),  # west
        (idx[:-1, :], idx[1:, :]),  # south (next row)
        (idx[1:, :], idx[:-1, :]),  # north
    ]
    src = np.concatenate([a.reshape(-1) for a, _ in pairs])
    dst = np.concatenate([b.reshape(-1) for _, b in pairs])
    order = np.lexsort((dst, src))
    src, dst = src[order], dst[order]
    return pd.DataFrame(
        {
            "src": pd.Series(ids_arr[src], dtype=str),
            "dst": pd.Series(ids_arr[dst], dtype=str),
            "weight": np.ones(len(src)),
            "kind": pd.Series(["neighbor"] * len(src), dtype=str),
        }
    )
