"""The synthetic city in memory, for small cities, notebooks and tests."""

import pyarrow as pa

from cityagent.hub.hub import Hub
from cityagent.hub.synth.chunks import SCHEMAS, hub_meta, iter_days
from cityagent.hub.synth.city import build_city, static_tables
from cityagent.hub.synth.params import SynthParams, SynthSpec


def synth_hub(
    sensors: int = 64,
    zones: int = 16,
    days: int = 7,
    step: str = "5min",
    seed: int = 0,
    start: str = "2026-03-02",
    params: SynthParams | None = None,
) -> Hub:
    """A Pengcheng-like synthetic hub held in memory; same arguments, same values as ``synthesize``.

    Args:
        sensors: road segments with a sensor (>= 4).
        zones: demand zones, laid out as a near-square grid.
        days: days to generate from local midnight of ``start``.
        step: reading interval, a pandas offset alias that divides a day.
        seed: random seed (non-negative integer).
        start: first date, ``YYYY-MM-DD`` in Asia/Shanghai.
        params: behaviour knobs (accident rate, rain, congestion spread, ...); defaults if None.

    Returns:
        A Hub with sensors, zones, edges, traffic, demand, incidents and weather.
    """
    spec = SynthSpec(sensors, zones, days, step, seed, start, params or SynthParams())
    city = build_city(spec)
    parts: dict[str, list[pa.Table]] = {name: [] for name in SCHEMAS}
    for chunk in iter_days(spec, city):
        for name, table in chunk.tables.items():
            parts[name].append(table)
    tables = static_tables(city) | {name: pa.concat_tables(p) for name, p in parts.items()}
    return Hub({name: t.to_pandas() for name, t in tables.items()}, hub_meta(spec, city))
