"""Day-sized chunks of the synthetic city as Arrow tables, carrying traffic and weather state across days.

Rows are ordered by ``ts`` then node, so concatenating the days keeps every temporal table sorted by
(ts, id). Both ``synth_hub`` (in memory) and ``synthesize`` (streamed to Parquet) consume these chunks,
which is why they give identical values.
"""

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from cityagent.hub.hub import SYNTH_SOURCE, HubMeta
from cityagent.hub.synth.city import City, build_city
from cityagent.hub.synth.demand import demand_day
from cityagent.hub.synth.params import TIMEZONE, SynthSpec
from cityagent.hub.synth.roads import to_latlon
from cityagent.hub.synth.traffic import TrafficState, traffic_day
from cityagent.hub.synth.weather import WeatherState, weather_day

TS = pa.timestamp("ns", tz=TIMEZONE)
SCHEMAS = {
    "traffic": pa.schema([("sensor_id", pa.string()), ("ts", TS), ("speed", pa.float64()), ("flow", pa.float64())]),
    "demand": pa.schema([("zone_id", pa.string()), ("ts", TS), ("count", pa.float64()), ("supply", pa.float64())]),
    "incidents": pa.schema(
        [
            ("ts", TS),
            ("lat", pa.float64()),
            ("lon", pa.float64()),
            ("cell_id", pa.string()),
            ("severity", pa.float64()),
            ("kind", pa.string()),
        ]
    ),
    "weather": pa.schema(
        [("ts", TS), ("temperature", pa.float64()), ("precipitation", pa.float64()), ("condition", pa.string())]
    ),
}
TEMPORAL = tuple(SCHEMAS)


@dataclass
class DayChunk:
    date: dt.date
    tables: dict[str, pa.Table]  # traffic, demand, incidents, weather

    @property
    def rows(self) -> int:
        return sum(t.num_rows for t in self.tables.values())


def hub_meta(spec: SynthSpec, city: City) -> HubMeta:
    """The manifest of a synthetic hub: step, timezone, seed and every generator argument."""
    return HubMeta(
        name="synthetic",
        step=spec.step,
        timezone=TIMEZONE,
        source=f"{SYNTH_SOURCE} seed={spec.seed}",
        extra={"grid": [city.zones.rows, city.zones.cols], "generator": spec.describe()},
    )


def _long(ids: pa.Array, ts: np.ndarray, columns: dict[str, np.ndarray], id_name: str) -> pa.Table:
    """[T, N] arrays -> long table, rows by ts then node."""
    steps, n = len(ts), len(ids)
    data = {id_name: ids.take(np.tile(np.arange(n, dtype=np.int32), steps)), "ts": np.repeat(ts, n)}
    data.update({k: v.reshape(-1) for k, v in columns.items()})  # [T, N] -> [T*N]
    return pa.Table.from_pydict(data, schema=SCHEMAS["traffic" if id_name == "sensor_id" else "demand"])


def iter_days(spec: SynthSpec, city: City | None = None) -> Iterator[DayChunk]:
    """Generate the city day by day; each chunk holds one local date of every temporal table."""
    city = city or build_city(spec)
    ids, zone_ids = city.ids, city.zone_ids
    traffic_state, weather_state = TrafficState.calm(spec.sensors), WeatherState()
    step_ns = round(spec.step_minutes * 60e9)
    for date in spec.dates():
        midnight = pd.Timestamp(date).tz_localize(TIMEZONE).value
        ts = midnight + np.arange(spec.steps_per_day, dtype=np.int64) * step_ns  # [T] UTC ns
        weather = weather_day(spec, date, weather_state)
        traffic = traffic_day(city, spec, date, weather.precipitation, traffic_state)
        demand = demand_day(city, spec, date, weather.precipitation)

        x_km, y_km = traffic.accident_xy_km[:, 0], traffic.accident_xy_km[:, 1]
        lat, lon = to_latlon(x_km, y_km)
        incidents = pa.Table.from_pydict(
            {
                "ts": ts[traffic.accident_step],
                "lat": lat,
                "lon": lon,
                "cell_id": zone_ids.take(city.zones.cell_of(x_km, y_km)),
                "severity": traffic.severity,
                "kind": pa.array(["accident"] * len(lat), pa.string()),
            },
            schema=SCHEMAS["incidents"],
        )
        tables = {
            "traffic": _long(ids, ts, {"speed": traffic.speed, "flow": traffic.flow}, "sensor_id"),
            "demand": _long(zone_ids, ts, {"count": demand.count, "supply": demand.supply}, "zone_id"),
            "incidents": incidents,
            "weather": pa.Table.from_pydict(
                {
                    "ts": ts,
                    "temperature": weather.temperature,
                    "precipitation": weather.precipitation,
                    "condition": pa.array(weather.condition, pa.string()),
                },
                schema=SCHEMAS["weather"],
            ),
        }
        yield DayChunk(date, tables)
