"""Trips per zone: departures (``count``) and arrivals (``supply``) by zone kind and hour, with event surges."""

import datetime as dt
from dataclasses import dataclass

import numpy as np

from cityagent.hub.synth.city import City
from cityagent.hub.synth.params import SynthSpec
from cityagent.hub.synth.profiles import bump, trip_rates
from cityagent.hub.synth.zones import ZONE_KINDS


@dataclass
class DemandDay:
    count: np.ndarray  # [T, Z] departures per step (integers as float64)
    supply: np.ndarray  # [T, Z] arrivals per step


def demand_day(city: City, spec: SynthSpec, date: dt.date, precip: np.ndarray) -> DemandDay:
    """One day of trips; events (a concert, a match) bring a zone a wave of arrivals then of departures.

    Args:
        city: the static city.
        spec: size, calendar, seed and knobs.
        date: the local date.
        precip: [T] city-wide precipitation, mm/h; rain raises ride-hailing demand.
    """
    steps, minutes = spec.steps_per_day, spec.step_minutes
    rng = spec.rng("demand", date)
    hour = np.arange(steps) * minutes / 60
    rates = trip_rates(hour, date.weekday() < 5)
    kinds = [ZONE_KINDS[k] for k in city.zones.kind]
    out_rate = np.stack([rates[k][0] for k in kinds], axis=1)  # [T, Z]
    in_rate = np.stack([rates[k][1] for k in kinds], axis=1)

    for _ in range(rng.poisson(spec.params.events_per_day)):
        zone, start, size = rng.integers(spec.zones), rng.uniform(12.0, 21.0), rng.uniform(2.0, 5.0)
        in_rate[:, zone] += size * bump(hour, start - 1.0, 0.6)
        out_rate[:, zone] += size * bump(hour, start + 1.5, 0.6)

    scale = city.trip_base[None, :] * (minutes / 5) * (1 + 0.25 * (precip > 0))[:, None]  # [T, Z]
    count = rng.poisson(out_rate * scale).astype(np.float64)
    supply = rng.poisson(in_rate * scale).astype(np.float64)
    return DemandDay(count=count, supply=supply)
