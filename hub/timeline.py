"""Time-axis checks for one temporal table: order per id, alignment to the step grid, and gaps."""

import numpy as np
import pandas as pd

from cityagent.hub.hub import HubMeta
from cityagent.hub.report import Report
from cityagent.hub.schema import TableSchema


def slot_numbers(ts: pd.Series, step: pd.Timedelta, meta: HubMeta) -> tuple[np.ndarray, np.ndarray]:
    """Integer slot of each timestamp on the hub's grid, and a mask of timestamps off that grid.

    Hubs that record only operating hours (``extra.slots_per_day`` + ``extra.first_slot``, e.g. metro
    06:00–24:00) number the slots of each day consecutively, so the night is not a gap.
    """
    local = ts.dt.tz_convert(meta.timezone)
    ns = local.dt.tz_localize(None).to_numpy().astype("datetime64[ns]").astype(np.int64)
    step_ns = step.value
    spd = meta.extra.get("slots_per_day")
    if spd:
        first = pd.Timedelta(meta.extra.get("first_slot", "00:00") + ":00").value
        day_ns = pd.Timedelta("1D").value
        day, tod = np.divmod(ns, day_ns)
        k, rem = np.divmod(tod - first, step_ns)
        off = (rem != 0) | (k < 0) | (k >= spd)
        return day * int(spd) + k, off
    origin = ns.min() if len(ns) else 0
    k, rem = np.divmod(ns - origin, step_ns)
    return k, rem != 0


def check_timeline(
    report: Report, name: str, df: pd.DataFrame, schema: TableSchema, step: pd.Timedelta, meta: HubMeta
) -> None:
    """Add errors for non-monotonic or off-grid timestamps and a warning with gap counts."""
    if df.empty:
        report.add("warning", name, "table is empty")
        return
    idcol = schema.node_column if schema.node_column in df else None
    ids = df[idcol].to_numpy() if idcol else np.zeros(len(df), dtype=np.int8)
    ts = df["ts"]
    back = (df.groupby(ids, sort=False)["ts"].diff() < pd.Timedelta(0)).to_numpy()
    if back.any():
        report.add(
            "error",
            name,
            f"{int(back.sum())} timestamp(s) go backwards within their "
            f"{idcol or 'series'}; sort each series by time before writing",
            column="ts",
            row=int(np.flatnonzero(back)[0]),
            count=int(back.sum()),
        )
    k, off = slot_numbers(ts, step, meta)
    if off.any():
        report.add(
            "error",
            name,
            f"{int(off.sum())} timestamp(s) are off the {meta.step} grid "
            f"(first {ts.iloc[int(np.flatnonzero(off)[0])]}); resample or fix hub.json step",
            column="ts",
            row=int(np.flatnonzero(off)[0]),
            count=int(off.sum()),
        )
    codes = pd.factorize(ids)[0]
    order = np.lexsort((k, codes))
    ck, cc = k[order], codes[order]
    same = cc[1:] == cc[:-1]
    d = np.diff(ck)[same]
    inner = np.clip(d - 1, 0, None)
    # a series that starts late or ends early misses steps too
    starts = np.r_[0, np.flatnonzero(~same) + 1]
    ends = np.r_[np.flatnonzero(~same), len(ck) - 1]
    lo, hi = ck.min(), ck.max()
    edge_missing = int((ck[starts] - lo).sum() + (hi - ck[ends]).sum())
    missing = int(inner.sum()) + edge_missing
    if missing:
        gaps = int((d > 1).sum())
        report.add(
            "warning",
            name,
            f"{missing} missing step(s): {missing - edge_missing} in {gaps} gap(s) inside series and "
            f"{edge_missing} at series ends, out of {(hi - lo + 1) * len(starts)} expected readings",
            column="ts",
            count=missing,
        )
