"""Road speeds and flows: daily load, congestion that spreads along roads, accidents that block them, rain.

Congestion ``c`` (0 free, 1 jammed) per segment follows its target (load + rain + accident blockage)
with time constant ``congestion_tau_min`` and takes a share ``spread`` from its neighbours each step, so
jams grow outward along the road graph. Accidents happen with a rate that rises with congestion, rain
and night, and block their segment (and less so its neighbours) for ``incident_tau_min``.

Speeds are reported to 0.1 km/h and flows in whole vehicles, as detectors do; the few distinct float64
values also let Parquet dictionary-encode them, which keeps a year of 10,000 sensors at ~3.5 GB.
"""

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from cityagent.hub.synth.city import City
from cityagent.hub.synth.params import SynthSpec
from cityagent.hub.synth.profiles import road_load

MINUTES_PER_DAY = 24 * 60
SEVERITIES = np.array([1.0, 2.0, 3.0])  # damage only, injury, serious
SEVERITY_P = np.array([0.7, 0.22, 0.08])


@dataclass
class TrafficState:
    """What carries from one step (and day) to the next, per segment."""

    congestion: np.ndarray  # [N] float32, 0..1
    blockage: np.ndarray  # [N] float32, accident effect still on the road

    @classmethod
    def calm(cls, n: int) -> "TrafficState":
        return cls(np.zeros(n, np.float32), np.zeros(n, np.float32))


@dataclass
class TrafficDay:
    speed: np.ndarray  # [T, N] km/h, float64
    flow: np.ndarray  # [T, N] vehicles per step, float64
    accident_step: np.ndarray  # [K] step of each accident
    accident_sensor: np.ndarray  # [K] segment position of each accident
    accident_xy_km: np.ndarray  # [K, 2] where along the segment, km east / north of the centre
    severity: np.ndarray  # [K]


def traffic_day(city: City, spec: SynthSpec, date: dt.date, precip: np.ndarray, state: TrafficState) -> TrafficDay:
    """One day of traffic; ``state`` is updated in place to the end of the day.

    Args:
        city: the static city.
        spec: size, calendar, seed and knobs.
        date: the local date.
        precip: [T] city-wide precipitation, mm/h.
        state: congestion and accident blockage at the end of the previous day.
    """
    p, steps, minutes = spec.params, spec.steps_per_day, spec.step_minutes
    n = spec.sensors
    rng, accident_rng = spec.rng("traffic", date), spec.rng("accidents", date)
    hour = np.arange(steps) * minutes / 60
    # each road's load profile shifted by its own minutes: a gather from a one-minute profile
    profile = road_load(np.arange(MINUTES_PER_DAY) / 60, date.weekday() < 5).astype(np.float32)
    minute = np.round(hour * 60).astype(np.int64)[:, None] - city.peak_shift_min[None, :]  # [T, N]
    load = city.load_scale * profile[minute % MINUTES_PER_DAY]  # [T, N] float32
    wet = (precip > 0).astype(np.float32)  # [T]
    rain_drive = 0.05 * wet + 0.15 * np.minimum(precip / 10.0, 1.0).astype(np.float32)
    night = ((hour < 5) | (hour >= 22)).astype(np.float32)
    per_step = p.accident_rate * minutes / 60 * (1 + p.accident_rain * wet) * (1 + p.accident_night * night)
    risk = (per_step[:, None] * (city.roads.lanes / 3)[None, :]).astype(np.float32)  # [T, N] at c = 0

    a = math.exp(-minutes / p.congestion_tau_min)
    a_block = math.exp(-minutes / p.incident_tau_min)
    shock = rng.standard_normal((steps, n), dtype=np.float32) * np.float32(0.06 * math.sqrt(1 - a * a))
    u = rng.random((steps, n), dtype=np.float32)
    adj = city.roads.adjacency

    c, block = state.congestion, state.blockage
    congestion = np.empty((steps, n), np.float32)
    acc_step, acc_sensor, acc_sev = [], [], []
    for t in range(steps):
        target = np.clip((load[t] + rain_drive[t] + block - 0.5) * 1.6, 0.0, 1.0)
        c = a * c + (1 - a) * ((1 - p.spread) * target + p.spread * (city.neighbour_mean @ c)) + shock[t]
        c = np.clip(c, 0.0, 1.0, out=c).astype(np.float32, copy=False)
        congestion[t] = c
        block *= np.float32(a_block)
        hits = np.flatnonzero(u[t] < risk[t] * (1 + p.accident_congestion * c))
        for i in hits:  # rare: a handful per step even in a 10k-segment city
            sev = accident_rng.choice(SEVERITIES, p=SEVERITY_P)
            block[i] += 0.35 * sev
            block[adj.indices[adj.indptr[i] : adj.indptr[i + 1]]] += 0.12 * sev
            acc_step.append(t)
            acc_sensor.append(i)
            acc_sev.append(sev)
        np.minimum(block, 1.5, out=block)
    state.congestion, state.blockage = c, block

    rain_slow = (0.05 * wet + 0.012 * np.minimum(precip, 20.0)).astype(np.float32)
    free = city.roads.free_flow.astype(np.float32)
    noise = 1 + p.speed_noise * rng.standard_normal((steps, n), dtype=np.float32)
    speed = free * (1 - 0.8 * congestion) * (1 - rain_slow[:, None]) * noise
    speed = np.round(np.clip(speed, 3.0, 1.15 * free).astype(np.float64), 1)
    density = 2 + 30 * load + 80 * congestion  # vehicles per km and lane
    per_step_flow = density * speed * (city.roads.lanes * minutes / 60)  # speed km/h * veh/km -> veh/h
    noise = rng.random((steps, n), dtype=np.float32) * np.float32(0.28) + np.float32(0.86)  # counting error, sd 8 %
    flow = np.round(np.maximum(per_step_flow * noise, 0.0))
    acc_sensor = np.asarray(acc_sensor, np.int64)
    offset = accident_rng.uniform(-0.2, 0.2, (len(acc_sensor), 2)) * p.spacing_km
    xy = np.stack([city.roads.x_km[acc_sensor], city.roads.y_km[acc_sensor]], axis=1) + offset
    return TrafficDay(
        speed=speed,
        flow=flow,
        accident_step=np.asarray(acc_step, np.int64),
        accident_sensor=acc_sensor,
        accident_xy_km=xy,
        severity=np.asarray(acc_sev, np.float64),
    )
