"""Cross-table checks: readings and edges must name sensors or zones the hub knows."""

import numpy as np
import pandas as pd

from cityagent.hub.hub import Hub
from cityagent.hub.report import Report
from cityagent.hub.schema import TABLES


def _unknown(report: Report, table: str, column: str, values: pd.Series, known: set[str], where: str) -> None:
    bad = ~values.isin(known) & values.notna()
    if bad.any():
        shown = [v.item() if isinstance(v, np.generic) else v for v in pd.unique(values[bad])[:3]]  # 1, not np.int64(1)
        examples = ", ".join(map(repr, shown))
        n_ids = values[bad].nunique()
        report.add(
            "error",
            table,
            f"{int(bad.sum())} row(s) name {n_ids} id(s) missing from {where} "
            f"(e.g. {examples}); add them to {where} or drop those rows",
            column=column,
            row=int(bad.to_numpy().nonzero()[0][0]),
            count=int(bad.sum()),
        )


def _ids(hub: Hub, table: str) -> set[str] | None:
    df = hub.tables.get(table)
    key = TABLES[table].key[0]
    return None if df is None or key not in df else set(df[key].dropna())


def check_references(report: Report, hub: Hub) -> None:
    """Readings for unknown sensors/zones and edges to unknown nodes are errors."""
    for name, df in hub.tables.items():
        schema = TABLES[name]
        col = schema.node_column
        if not col or col not in df or not schema.node_table:
            continue
        known = _ids(hub, schema.node_table)
        if known is None:
            report.add(
                "warning",
                name,
                f"no {schema.node_table} table, so {col} values cannot be checked; "
                f"add {schema.node_table} with coordinates",
            )
            continue
        _unknown(report, name, col, df[col], known, schema.node_table)
    edges = hub.tables.get("edges")
    if edges is not None:
        nodes = (_ids(hub, "sensors") or set()) | (_ids(hub, "zones") or set())
        for col in ("src", "dst"):
            if col in edges:
                _unknown(report, "edges", col, edges[col], nodes, "sensors or zones")
    sensors = hub.tables.get("sensors")
    if sensors is not None and "traffic" in hub.tables and not {"lat", "lon"} <= set(sensors.columns):
        report.add("warning", "sensors", "no coordinates: graphs must come from edges, not distances")
