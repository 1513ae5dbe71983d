"""Hub table contracts: which tables exist, their columns, kinds and keys.

Long format, one row per reading; timestamps are timezone-aware; ids are strings. Measured values have physical
``bounds``, set generously (far beyond any real reading) so that only sentinels such as 1e9 and unit mistakes fail.
The optional ``supply`` column of ``demand`` holds arrivals (drop-offs, inflow) next to ``count``
(departures, pick-ups, outflow).
"""

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["id", "ts", "float", "int", "str", "bool"]

LAT, LON = (-90.0, 90.0), (-180.0, 180.0)
SPEED = (0.0, 300.0)  # km/h: SZ-taxi tops out near 81, the synthetic city near 117 (1.15 × a 102 km/h free flow)
COUNT = (0.0, 1e7)  # per step: the busiest real hub (Shanghai metro) peaks near 28,000 riders per station and step


@dataclass(frozen=True)
class Column:
    """One column: its name, kind, whether it must be present, whether NaN is allowed, and its valid range."""

    name: str
    kind: Kind
    required: bool = True
    nullable: bool = False
    doc: str = ""
    bounds: tuple[float, float] | None = None  # inclusive [low, high], in ``unit``
    unit: str = ""


@dataclass(frozen=True)
class TableSchema:
    """A hub table: its columns, the columns that identify a row, and the node column if any."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    node_column: str | None = None  # the id that must exist in a static table
    node_table: str | None = None  # 'sensors' or 'zones'
    temporal: bool = False  # has a ts column, partitioned by date on disk
    doc: str = ""
    one_of: tuple[tuple[str, ...], ...] = field(default=())  # at least one group fully present

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


TRAFFIC = TableSchema(
    "traffic",
    (
        Column("sensor_id", "id"),
        Column("ts", "ts"),
        Column("speed", "float", doc="km/h", bounds=SPEED, unit="km/h"),
        Column("flow", "float", required=False, doc="vehicles per step", bounds=COUNT, unit="vehicles per step"),
    ),
    key=("sensor_id", "ts"),
    node_column="sensor_id",
    node_table="sensors",
    temporal=True,
    doc="speed (and flow) per road sensor and time step",
)
DEMAND = TableSchema(
    "demand",
    (
        Column("zone_id", "id"),
        Column("ts", "ts"),
        Column("count", "float", doc="departures (trips, pick-ups, riders) per step", bounds=COUNT, unit="per step"),
        Column(
            "supply",
            "float",
            required=False,
            doc="arrivals (drop-offs, inflow) per step",
            bounds=COUNT,
            unit="per step",
        ),
    ),
    key=("zone_id", "ts"),
    node_column="zone_id",
    node_table="zones",
    temporal=True,
    doc="trip counts per zone (grid cell or station) and time step",
)
INCIDENTS = TableSchema(
    "incidents",
    (
        Column("ts", "ts"),
        Column("lat", "float", required=False, bounds=LAT, unit="degrees"),
        Column("lon", "float", required=False, bounds=LON, unit="degrees"),
        Column("cell_id", "id", required=False),
        Column("severity", "float", doc="severity weight; risk = sum of severities per cell and step", bounds=COUNT),
        Column("kind", "str", required=False),
    ),
    key=(),
    node_column="cell_id",
    node_table="zones",
    temporal=True,
    one_of=(("lat", "lon"), ("cell_id",)),
    doc="accidents and other incidents, located by coordinates or by grid cell",
)
SENSORS = TableSchema(
    "sensors",
    (
        Column("sensor_id", "id"),
        Column("lat", "float", required=False, bounds=LAT, unit="degrees"),
        Column("lon", "float", required=False, bounds=LON, unit="degrees"),
        Column("free_flow", "float", required=False, doc="free-flow speed, km/h", bounds=SPEED, unit="km/h"),
        Column("name", "str", required=False),
    ),
    key=("sensor_id",),
    doc="road sensors (or road segments) with coordinates",
)
ZONES = TableSchema(
    "zones",
    (
        Column("zone_id", "id"),
        Column("lat", "float", required=False, bounds=LAT, unit="degrees"),
        Column("lon", "float", required=False, bounds=LON, unit="degrees"),
        Column("row", "int", required=False, doc="grid row, for gridded cities"),
        Column("col", "int", required=False, doc="grid column"),
        Column("risk_mask", "bool", required=False, doc="cell counts in risk evaluation"),
        Column("name", "str", required=False),
    ),
    key=("zone_id",),
    one_of=(("lat", "lon"), ("row", "col")),
    doc="demand zones, stations or grid cells",
)
EDGES = TableSchema(
    "edges",
    (
        Column("src", "id"),
        Column("dst", "id"),
        Column("weight", "float", required=False),
        Column("kind", "str", required=False, doc="road, neighbor, line, risk, ..."),
    ),
    key=("src", "dst", "kind"),
    doc="directed graph edges between sensors or zones",
)
WEATHER = TableSchema(
    "weather",
    (
        Column("ts", "ts"),
        Column("temperature", "float", required=False, doc="degrees Celsius", bounds=(-90.0, 60.0), unit="°C"),
        Column("precipitation", "float", required=False, doc="mm per hour", bounds=(0.0, 500.0), unit="mm/h"),
        Column("condition", "str", required=False, doc="clear, cloudy, rain, snow, mist, ..."),
    ),
    key=("ts",),
    temporal=True,
    doc="city-wide weather per time step",
)
DECISIONS = TableSchema(
    "decisions",
    (
        Column("ts", "ts", doc="when the decision was made"),
        Column("kind", "str", doc="congestion_alert, rebalance, risk_hotspot"),
        Column("target_id", "id"),
        Column("value", "float"),
        Column("detail", "str", required=False),
        Column("model", "str", required=False),
        Column("model_version", "str", required=False),
        Column(
            "anchor",
            "str",
            required=False,
            nullable=True,  # rows written before the agent recorded it have none
            doc="the forecast window's last input step, ISO 8601 with offset: the agent decides each window once",
        ),
    ),
    key=(),
    temporal=True,
    doc="what the agent decided, stamped with time, model version and the window it decided on",
)

TABLES: dict[str, TableSchema] = {
    t.name: t for t in (TRAFFIC, DEMAND, INCIDENTS, SENSORS, ZONES, EDGES, WEATHER, DECISIONS)
}
STATIC_TABLES = ("sensors", "zones", "edges")
TEMPORAL_TABLES = tuple(name for name, t in TABLES.items() if t.temporal)


def table_schema(name: str) -> TableSchema:
    """Look a table up by name; unknown names list the valid ones."""
    from cityagent.errors import HubError

    if name not in TABLES:
        raise HubError(f"unknown hub table {name!r}; hub tables are: {', '.join(TABLES)}")
    return TABLES[name]
