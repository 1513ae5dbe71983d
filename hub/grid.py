"""Where the cells of a gridded city sit: the (rows, cols) that grid models (risk_conv, st_resnet) reshape the nodes
to, and the 4-neighbour graph. A zone's own ``row``/``col`` decide, not the order of the zones table's rows."""

from collections.abc import Sequence

import pandas as pd

from cityagent.errors import HubError
from cityagent.hub.hub import Hub


def zone_cells(hub: Hub) -> pd.DataFrame | None:
    """The zones table indexed by zone id with integer ``row``/``col``, or None when its zones are not grid cells
    (no such columns, or some zone without them: stations among cells have no place on the grid)."""
    if not hub.has("zones"):
        return None
    zones = hub.table("zones")
    if not {"row", "col"} <= set(zones.columns) or zones[["row", "col"]].isna().any().any() or not len(zones):
        return None
    cells = zones[["row", "col"]].astype(int)
    cells.index = zones["zone_id"].astype(str)
    return cells


def row_major(cells: pd.DataFrame) -> list[str]:
    """Zone ids ordered row by row, then column by column (ties keep the table's order)."""
    return list(cells.sort_values(["row", "col"], kind="stable").index)


def node_grid(hub: Hub, nodes: Sequence[str]) -> tuple[int, int] | None:
    """``(rows, cols)`` when ``nodes`` are every cell of the hub's grid in row-major order, else None.

    The shape is ``extra.grid`` from hub.json when given, else the zones' largest row and col plus one. When the
    zones carry ``row``/``col`` they must agree with the node order: a grid model would otherwise place cells beside
    cells that are not their neighbours, and train without a word.

    Raises:
        HubError: the nodes fill the grid but some zone's row/col is not where its position puts it.
    """
    declared = hub.meta.extra.get("grid")
    cells = zone_cells(hub)
    nodes = [str(n) for n in nodes]
    if cells is not None and pd.Index(nodes).isin(cells.index).all():
        at = cells.loc[nodes]
        shape = (int(declared[0]), int(declared[1])) if declared else (int(at.row.max()) + 1, int(at.col.max()) + 1)
        if shape[0] * shape[1] != len(nodes):
            return None
        for i, (node, row, col) in enumerate(zip(nodes, at.row, at.col, strict=True)):
            if (row, col) != divmod(i, shape[1]):
                raise HubError(
                    f"zones: zone {node!r} has row={row}, col={col}, but it is node {i} of the task, which is "
                    f"cell {divmod(i, shape[1])} of the {shape[0]}x{shape[1]} grid; every cell of the grid needs "
                    "exactly one zone with its row and col (`cityagent hub validate` lists the zones)"
                )
        return shape
    if declared and int(declared[0]) * int(declared[1]) == len(nodes):
        return int(declared[0]), int(declared[1])
    return None
