"""The road network: a jittered street grid with an avenue, a ring road and two diagonal expressways.

Each sensor is one road segment between two neighbouring intersections. The city grows outward from
the centre inside an ellipse twice as wide (east-west) as tall, like Shenzhen's coastal strip, so any
number of sensors gives a connected network.
"""

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from cityagent.hub.synth.params import CENTER

# road kind -> (display name, mean free-flow speed km/h, lanes); later kinds win where a segment is both
ROAD_KINDS = (
    ("street", 50.0, 2),
    ("ring road", 70.0, 3),
    ("Shennan Avenue", 72.0, 4),
    ("diagonal expressway", 90.0, 4),
)
KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON = 111.320 * math.cos(math.radians(CENTER[0]))


def to_latlon(x_km: np.ndarray, y_km: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Degrees of points given in km east / north of the centre (flat earth: the city is small)."""
    return CENTER[0] + y_km / KM_PER_DEG_LAT, CENTER[1] + x_km / KM_PER_DEG_LON


@dataclass
class Roads:
    """Road segments (one per sensor) and their adjacency; arrays are indexed by sensor position."""

    ids: list[str]
    lat: np.ndarray  # [N] segment midpoint
    lon: np.ndarray
    x_km: np.ndarray  # [N] east of the centre
    y_km: np.ndarray  # [N] north of the centre
    free_flow: np.ndarray  # [N] km/h
    lanes: np.ndarray  # [N]
    kind: np.ndarray  # [N] index into ROAD_KINDS
    names: list[str]
    centrality: np.ndarray  # [N] 1 at the centre, 0 at the edge of town
    adjacency: sp.csr_matrix  # [N, N] 1 where two segments share an intersection
    edge_weight: sp.csr_matrix  # [N, N] Gaussian kernel of midpoint distance on adjacent pairs

    @property
    def mean_neighbour(self) -> sp.csr_matrix:
        """Row-normalised adjacency: ``mean_neighbour @ x`` averages x over each segment's neighbours."""
        deg = np.asarray(self.adjacency.sum(axis=1)).ravel()
        return sp.diags(1.0 / np.maximum(deg, 1.0)).dot(self.adjacency).tocsr().astype(np.float32)


def _candidate_segments(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All grid streets plus both diagonals through the centre: endpoints a, b (node = r * cols + c), kind."""
    node = np.arange(rows * cols).reshape(rows, cols)
    rc, cc = rows // 2, cols // 2
    a = [node[:, :-1].ravel(), node[:-1, :].ravel()]  # east-west, north-south streets
    b = [node[:, 1:].ravel(), node[1:, :].ravel()]
    k = np.arange(-rc, rows - rc - 1)
    keep = (cc + k >= 0) & (cc + k + 1 < cols) & (cc - k - 1 >= 0) & (cc - k < cols)
    k = k[keep]
    a += [node[rc + k, cc + k], node[rc + k, cc - k]]
    b += [node[rc + k + 1, cc + k + 1], node[rc + k + 1, cc - k - 1]]
    a, b = np.concatenate(a), np.concatenate(b)
    kind = np.zeros(len(a), dtype=np.int64)
    kind[len(a) - 2 * len(k) :] = 3
    return a, b, kind


def build_roads(n: int, spacing_km: float, rng: np.random.Generator) -> Roads:
    """Lay out ``n`` road segments around the centre of Shenzhen.

    Args:
        n: number of segments (sensors).
        spacing_km: distance between neighbouring intersections.
        rng: the city's random stream (jitter, speeds).
    """
    rows = 3
    while 0.7 * 4 * rows * rows < n:  # ~2 * rows * cols segments, ~pi/4 of them inside the ellipse
        rows += 2
    cols = 2 * rows + 1
    rc, cc = rows // 2, cols // 2
    a, b, kind = _candidate_segments(rows, cols)
    r_of, c_of = np.divmod(np.arange(rows * cols), cols)
    # elliptical distance of each midpoint from the centre, in grid units; nearest first, ties by index
    mid_r = (r_of[a] + r_of[b]) / 2 - rc
    mid_c = (c_of[a] + c_of[b]) / 2 - cc
    dist = np.hypot(mid_c / 2, mid_r)
    order = np.lexsort((np.arange(len(a)), np.round(dist, 9)))[:n]
    order.sort()
    a, b, kind, mid_r, mid_c, dist = a[order], b[order], kind[order], mid_r[order], mid_c[order], dist[order]

    reach = max(float(dist.max()), 1.0)
    ring = max(1, round(reach / 2))
    on_ring_row = (np.abs(r_of[a] - rc) == ring) & (r_of[a] == r_of[b]) & (np.abs(mid_c) <= 2 * ring)
    on_ring_col = (np.abs(c_of[a] - cc) == 2 * ring) & (c_of[a] == c_of[b]) & (np.abs(mid_r) <= ring)
    kind[(kind == 0) & (on_ring_row | on_ring_col)] = 1
    kind[(kind <= 1) & (r_of[a] == rc) & (r_of[b] == rc)] = 2

    jitter = rng.uniform(-0.15, 0.15, size=(rows * cols, 2)) * spacing_km
    node_x = (c_of - cc) * spacing_km + jitter[:, 0]
    node_y = (rc - r_of) * spacing_km + jitter[:, 1]  # row 0 is the north edge
    x_km, y_km = (node_x[a] + node_x[b]) / 2, (node_y[a] + node_y[b]) / 2
    lat, lon = to_latlon(x_km, y_km)

    base_speed = np.array([k[1] for k in ROAD_KINDS])[kind]
    free_flow = np.clip(base_speed + rng.normal(0.0, 4.0, n), base_speed - 12, base_speed + 12)
    lanes = np.array([k[2] for k in ROAD_KINDS])[kind]
    counters = [0] * len(ROAD_KINDS)
    names = []
    for k in kind:
        counters[k] += 1
        names.append(f"{ROAD_KINDS[k][0]} #{counters[k]}")

    incidence = sp.csr_matrix((np.ones(2 * n), (np.tile(np.arange(n), 2), np.concatenate([a, b]))))
    adjacency = (incidence @ incidence.T).tocsr()
    adjacency.setdiag(0)
    adjacency.eliminate_zeros()
    adjacency.data[:] = 1.0
    src, dst = adjacency.nonzero()
    gap = np.hypot(x_km[src] - x_km[dst], y_km[src] - y_km[dst])
    weight = sp.csr_matrix((np.exp(-((gap / spacing_km) ** 2)), (src, dst)), shape=(n, n))

    width = max(4, len(str(n - 1)))
    return Roads(
        ids=[f"s{i:0{width}d}" for i in range(n)],
        lat=lat,
        lon=lon,
        x_km=x_km,
        y_km=y_km,
        free_flow=free_flow,
        lanes=lanes.astype(np.float64),
        kind=kind,
        names=names,
        centrality=1.0 - dist / reach,
        adjacency=adjacency,
        edge_weight=weight,
    )
