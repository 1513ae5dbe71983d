"""Is the declared step the data's? Readings on a coarser grid than hub.json's step make every gap look like
missing data, and filling those gaps (``task.params.impute``) would invent most of the readings."""

import numpy as np
import pandas as pd

from cityagent.hub.hub import HubMeta, step_text
from cityagent.hub.report import Report
from cityagent.hub.schema import TableSchema
from cityagent.hub.timeline import slot_numbers

STEP_TABLES = ("traffic", "demand")  # the tables models are trained on; weather may be coarser by nature


def check_step(
    report: Report, name: str, df: pd.DataFrame, schema: TableSchema, step: pd.Timedelta, meta: HubMeta
) -> None:
    """An error when every series steps by a multiple of ``k`` > 1 slots: the readings come every ``k`` steps."""
    k, off = slot_numbers(df["ts"], step, meta)
    idcol = schema.node_column if schema.node_column in df else None
    ids = pd.factorize(df[idcol])[0] if idcol else np.zeros(len(df), dtype=np.int64)
    keep = ~off
    order = np.lexsort((k[keep], ids[keep]))
    slots, series = k[keep][order], ids[keep][order]
    same = series[1:] == series[:-1]
    d = np.diff(slots)[same]
    d = d[d > 0]
    if len(d) < 2:  # one step proves nothing
        return
    every = int(np.gcd.reduce(d.astype(np.int64)))
    if every <= 1:
        return
    actual = step_text(step * every)
    report.add(
        "error",
        name,
        f"the readings are every {actual} but hub.json step is {meta.step}; set step to {actual!r} "
        f"(with the finer step {every - 1} of every {every} readings would count as missing, and imputing them "
        f"would invent data)",
        column="ts",
    )
