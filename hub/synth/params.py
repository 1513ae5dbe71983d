"""What a synthetic city is made of: its size and calendar (``SynthSpec``) and its behaviour knobs (``SynthParams``)."""

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cityagent import durations
from cityagent.errors import ConfigError

TIMEZONE = "Asia/Shanghai"
CENTER = (22.54, 114.05)  # Futian, Shenzhen (lat, lon)

# Independent random streams per day, so one table's draws never shift another's.
STREAMS = {"city": 0, "weather": 1, "traffic": 2, "accidents": 3, "demand": 4}


@dataclass(frozen=True)
class SynthParams:
    """Behaviour knobs of the synthetic city; defaults give a plausible Pengcheng.

    Args:
        spacing_km: distance between neighbouring intersections.
        congestion_tau_min: time constant (minutes) with which congestion follows demand.
        spread: share of a road's congestion target taken from its neighbours (0 = no spreading).
        incident_tau_min: time constant (minutes) with which an accident's slowdown fades.
        accident_rate: accidents per road segment per hour at free flow, dry weather, daytime. High for one real
            segment on purpose: a city of a few dozen sensors over a week must hold enough accidents for a risk
            model to learn from and be scored on (at 2.5e-4 the default city had 3 in a week, none in its test days).
        accident_congestion: extra accident rate per unit of congestion (multiplier ``1 + x * c``).
        accident_rain: extra accident rate while it rains (multiplier ``1 + x``).
        accident_night: extra accident rate between 22:00 and 05:00 (multiplier ``1 + x``).
        rain_per_day: expected number of rain episodes starting per day (before the wet-season factor).
        rain_hours: mean length of a rain episode in hours.
        events_per_day: expected number of demand surges (concerts, matches) per day, city-wide.
        trips_per_zone: mean departures per zone per 5 minutes at the daily average.
        speed_noise: relative standard deviation of a sensor's reading around the true speed.
    """

    spacing_km: float = 0.5
    congestion_tau_min: float = 20.0
    spread: float = 0.35
    incident_tau_min: float = 45.0
    accident_rate: float = 5e-3
    accident_congestion: float = 4.0
    accident_rain: float = 1.5
    accident_night: float = 1.5
    rain_per_day: float = 0.6
    rain_hours: float = 2.5
    events_per_day: float = 0.5
    trips_per_zone: float = 8.0
    speed_noise: float = 0.04


@dataclass(frozen=True)
class SynthSpec:
    """The size, calendar and seed of one synthetic city, validated on construction.

    Args:
        sensors: road segments with a sensor (>= 4).
        zones: demand zones, laid out as a near-square grid (>= 1).
        days: days to generate (>= 1), starting at local midnight of ``start``.
        step: pandas offset alias that divides a day (``5min``, ``15min``, ``1h``).
        seed: non-negative integer; same seed and arguments give the same city.
        start: first date, ``YYYY-MM-DD`` (Asia/Shanghai).
        params: behaviour knobs.
    """

    sensors: int = 64
    zones: int = 16
    days: int = 7
    step: str = "5min"
    seed: int = 0
    start: str = "2026-03-02"
    params: SynthParams = field(default_factory=SynthParams)

    def __post_init__(self) -> None:
        for name, low in (("sensors", 4), ("zones", 1), ("days", 1), ("seed", 0)):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < low:
                raise ConfigError(f"synthetic city {name}={value!r} is invalid; pass an integer >= {low}")
        try:
            delta = durations.step_delta(self.step)
        except ValueError as e:
            raise ConfigError(f"synthetic city step {self.step!r} is not a pandas offset; use e.g. '5min'") from e
        if delta <= pd.Timedelta(0) or pd.Timedelta("1D") % delta != pd.Timedelta(0):
            raise ConfigError(f"synthetic city step {self.step!r} must divide a day evenly, e.g. '5min' or '1h'")
        try:
            dt.date.fromisoformat(self.start)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"synthetic city start {self.start!r} is not a date; use YYYY-MM-DD") from e

    @property
    def step_minutes(self) -> float:
        return durations.step_delta(self.step).total_seconds() / 60.0

    @property
    def steps_per_day(self) -> int:
        return round(24 * 60 / self.step_minutes)

    def dates(self) -> list[dt.date]:
        first = dt.date.fromisoformat(self.start)
        return [first + dt.timedelta(days=d) for d in range(self.days)]

    def rng(self, stream: str, date: dt.date | None = None) -> np.random.Generator:
        """A generator seeded by (seed, date, stream): any day's draws are reproducible on their own."""
        day = 0 if date is None else date.toordinal()
        return np.random.default_rng([self.seed, day, STREAMS[stream]])

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable generator arguments for ``HubMeta.extra``."""
        return asdict(self)
