"""Hub readings as drift inputs: channel values ``[T, N]`` of a time range, on the hub's grid."""

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cityagent.errors import HubError
from cityagent.hub.hub import Hub
from cityagent.hub.tensor import to_tensor


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
    st = to_tensor(hub, table, list(channels))
    keep = np.ones(len(st.ts), dtype=bool)
    if start is not None:
        keep &= st.ts >= _ts(start, hub.meta.timezone)
    if end is not None:
        keep &= st.ts < _ts(end, hub.meta.timezone)
    if not keep.any():
        raise HubError(f"table {table} has no steps between {start} and {end} (it spans {st.ts[0]} – {st.ts[-1]})")
    return {c: st.channel(c)[keep] for c in channels}, list(st.nodes)


def recent_start(hub: Hub, table: str, window: str) -> pd.Timestamp:
    """Where the last ``window`` (e.g. '1d') of ``table`` begins: its newest reading minus the window, plus a step."""
    ts = hub.table(table)["ts"]
    return ts.max() - pd.Timedelta(window) + hub.meta.step_delta


def _ts(value: pd.Timestamp | str, timezone: str) -> pd.Timestamp:
    t = pd.Timestamp(value)
    return t.tz_localize(timezone) if t.tzinfo is None else t.tz_convert(timezone)
