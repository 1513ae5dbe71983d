"""Hub readings as drift inputs: channel values ``[T, N]`` of a time range, on the hub's grid."""

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cityagent import durations
from cityagent.errors import HubError
from cityagent.hub.hub import Hub
from cityagent.hub.tensor import check_columns, hub_span, index_between, node_order, to_tensor


def hub_values(
    hub: Hub,
    table: str,
    channels: Sequence[str],
    start: pd.Timestamp | str | None = None,
    end: pd.Timestamp | str | None = None,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Values of ``channels`` of ``table`` with ``start <= ts < end`` as ``{channel: [T, N]}``, and the node ids.

    Args:
        hub: the hub.
        table: ``traffic``, ``demand`` or another temporal table.
        channels: value columns, e.g. ``["speed"]``.
        start: first time included (string read in the hub's timezone); None = from the beginning.
        end: first time excluded; None = to the end.
    """
    tz = hub.meta.timezone
    index = index_between(hub, None if start is None else _ts(start, tz), None if end is None else _ts(end, tz))
    if not len(index):
        first, last = hub_span(hub)
        raise HubError(f"table {table} has no steps between {start} and {end} (it spans {first} – {last})")
    # only the rows of the span are laid out: a day's drift on a hub read for weeks costs a day's [T, N] array
    df = hub.table(table)
    ts = df["ts"]
    if table == "incidents":  # counted in the step they fall in, as to_tensor counts them
        ts = ts.dt.tz_convert("UTC").dt.floor(hub.meta.step_delta)
    rows = df[(ts >= index[0]) & (ts <= index[-1])].reset_index(drop=True)
    nodes = node_order(hub, table)
    if rows.empty and not df.empty:  # none in the span: absent readings (no incidents), as the whole table gives
        check_columns(df, table, channels)
        fill = 0.0 if table == "incidents" else np.nan
        return {c: np.full((len(index), len(nodes)), fill, dtype=np.float32) for c in channels}, nodes
    st = to_tensor(Hub({table: rows}, hub.meta), table, list(channels), nodes=nodes, index=index)
    return {c: st.channel(c) for c in channels}, list(st.nodes)


def recent_start(hub: Hub, table: str, window: str) -> pd.Timestamp:
    """Where the last ``window`` (e.g. '1d') of ``table`` begins: its newest reading minus the window, plus a step."""
    ts = hub.table(table)["ts"]
    return ts.max() - durations.duration(window, "drift.window") + hub.meta.step_delta


def _ts(value: pd.Timestamp | str, timezone: str) -> pd.Timestamp:
    t = pd.Timestamp(value)
    return t.tz_localize(timezone) if t.tzinfo is None else t.tz_convert(timezone)
