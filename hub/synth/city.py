"""The static city: roads with their traffic traits, demand zones with their trip rates, and the static tables."""

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from cityagent.hub.synth.params import SynthSpec
from cityagent.hub.synth.roads import Roads, build_roads
from cityagent.hub.synth.zones import Zones, build_zones


@dataclass
class City:
    """Everything that does not change over time."""

    roads: Roads
    zones: Zones
    load_scale: np.ndarray  # [N] how much of the city's load a road carries (central arterials most)
    peak_shift_min: np.ndarray  # [N] int minutes a road's peaks come early (<0) or late (>0)
    neighbour_mean: sp.csr_matrix  # [N, N] float32, averages over adjacent segments
    sensor_zone: np.ndarray  # [N] zone position of each segment's midpoint
    trip_base: np.ndarray  # [Z] mean departures per 5 minutes

    @property
    def ids(self) -> pa.Array:
        return pa.array(self.roads.ids, pa.string())

    @property
    def zone_ids(self) -> pa.Array:
        return pa.array(self.zones.ids, pa.string())


def build_city(spec: SynthSpec) -> City:
    """Lay out roads and zones and draw their fixed traits from the seed."""
    rng = spec.rng("city")
    roads = build_roads(spec.sensors, spec.params.spacing_km, rng)
    zones = build_zones(spec.zones, roads.x_km, roads.y_km, spec.params.spacing_km / 2, rng)
    n = spec.sensors
    kind_share = np.array([1.0, 1.08, 1.12, 1.0])[roads.kind]
    load_scale = np.exp(rng.normal(0.0, 0.12, n)) * (0.8 + 0.4 * roads.centrality) * kind_share
    kind_trips = np.array([1.0, 1.4, 1.2])[zones.kind]
    trip_base = spec.params.trips_per_zone * kind_trips * np.exp(rng.normal(0.0, 0.35, spec.zones))
    return City(
        roads=roads,
        zones=zones,
        load_scale=load_scale.astype(np.float32),
        peak_shift_min=np.round(rng.normal(0.0, 15.0, n)).astype(np.int64),
        neighbour_mean=roads.mean_neighbour,
        sensor_zone=zones.cell_of(roads.x_km, roads.y_km),
        trip_base=trip_base,
    )


def static_tables(city: City) -> dict[str, pa.Table]:
    """sensors, zones and edges (road adjacency between sensors, rook neighbours between zones)."""
    r, z = city.roads, city.zones
    sensors = pa.table(
        {
            "sensor_id": city.ids,
            "lat": r.lat,
            "lon": r.lon,
            "free_flow": np.round(r.free_flow, 1),
            "name": pa.array(r.names, pa.string()),
        }
    )
    zones = pa.table(
        {
            "zone_id": city.zone_ids,
            "lat": z.lat,
            "lon": z.lon,
            "row": z.row.astype(np.int64),
            "col": z.col.astype(np.int64),
            "name": pa.array(z.names, pa.string()),
        }
    )
    road = r.edge_weight.tocoo()
    grid = np.arange(len(z.ids)).reshape(z.rows, z.cols)
    pairs = [(grid[:, :-1], grid[:, 1:]), (grid[:-1, :], grid[1:, :])]
    zsrc = np.concatenate([p.ravel() for a, b in pairs for p in (a, b)])
    zdst = np.concatenate([p.ravel() for a, b in pairs for p in (b, a)])
    zorder = np.lexsort((zdst, zsrc))
    rorder = np.lexsort((road.col, road.row))
    n_road, n_zone = len(rorder), len(zorder)
    edges = pa.table(
        {
            "src": pa.concat_arrays([city.ids.take(road.row[rorder]), city.zone_ids.take(zsrc[zorder])]),
            "dst": pa.concat_arrays([city.ids.take(road.col[rorder]), city.zone_ids.take(zdst[zorder])]),
            "weight": np.concatenate([np.round(road.data[rorder], 4), np.ones(n_zone)]),
            "kind": pa.array(["road"] * n_road + ["neighbor"] * n_zone, pa.string()),
        }
    )
    return {"sensors": sensors, "zones": zones, "edges": edges}
