"""Demand zones: a grid of cells over the road network, business-heavy in the centre, residential outside."""

import math
from dataclasses import dataclass

import numpy as np

from cityagent.hub.synth.roads import to_latlon

ZONE_KINDS = ("residential", "business", "mixed")


@dataclass
class Zones:
    """A rows x cols grid of zones; row 0 is the northern edge, col 0 the western edge."""

    ids: list[str]
    rows: int
    cols: int
    row: np.ndarray  # [Z]
    col: np.ndarray  # [Z]
    lat: np.ndarray  # [Z] cell centre
    lon: np.ndarray
    kind: np.ndarray  # [Z] index into ZONE_KINDS
    bounds_km: tuple[float, float, float, float]  # west, east, south, north

    def cell_of(self, x_km: np.ndarray, y_km: np.ndarray) -> np.ndarray:
        """Zone position of each point (km east / north of the centre); points outside clamp to the border."""
        west, east, south, north = self.bounds_km
        col = np.clip(((x_km - west) / (east - west) * self.cols).astype(np.int64), 0, self.cols - 1)
        row = np.clip(((north - y_km) / (north - south) * self.rows).astype(np.int64), 0, self.rows - 1)
        return row * self.cols + col

    @property
    def names(self) -> list[str]:
        return [f"{ZONE_KINDS[k]} {r}-{c}" for k, r, c in zip(self.kind, self.row, self.col, strict=True)]


def grid_shape(n: int, aspect: float) -> tuple[int, int]:
    """rows, cols with rows * cols == n and cols / rows closest to ``aspect``."""
    pairs = [(r, n // r) for r in range(1, n + 1) if n % r == 0]
    return min(pairs, key=lambda rc: (abs(math.log(rc[1] / rc[0] / aspect)), rc[0]))


def build_zones(n: int, x_km: np.ndarray, y_km: np.ndarray, margin_km: float, rng: np.random.Generator) -> Zones:
    """Cover the points (x_km, y_km) with ``n`` zones.

    Args:
        n: number of zones.
        x_km, y_km: road midpoints, km east / north of the centre.
        margin_km: border added around the roads.
        rng: the city's random stream (zone kinds).
    """
    west, east = float(x_km.min()) - margin_km, float(x_km.max()) + margin_km
    south, north = float(y_km.min()) - margin_km, float(y_km.max()) + margin_km
    rows, cols = grid_shape(n, (east - west) / (north - south))
    row, col = np.divmod(np.arange(n), cols)
    cx = west + (col + 0.5) * (east - west) / cols
    cy = north - (row + 0.5) * (north - south) / rows
    radius = np.hypot(cx / max(east, -west), cy / max(north, -south))  # 0 centre, ~1 edge
    p_business = np.clip(1.0 - 1.1 * radius, 0.1, 0.85)
    u = rng.uniform(size=n)
    kind = np.where(u < p_business, 1, np.where(u < p_business + 0.2, 2, 0))
    width = max(3, len(str(n - 1)))
    lat, lon = to_latlon(cx, cy)
    return Zones(
        ids=[f"z{i:0{width}d}" for i in range(n)],
        rows=rows,
        cols=cols,
        row=row,
        col=col,
        lat=lat,
        lon=lon,
        kind=kind,
        bounds_km=(west, east, south, north),
    )
