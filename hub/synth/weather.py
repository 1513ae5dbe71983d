"""City-wide weather per step: a daily temperature cycle with seasonal drift, and Markov rain episodes."""

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from cityagent.hub.synth.params import SynthSpec


@dataclass
class WeatherState:
    """What carries from one step (and day) to the next."""

    anomaly: float = 0.0  # °C away from the seasonal mean, AR(1) over days
    cloud: float = 0.3  # cloud cover 0..1
    rain: float = 0.0  # intensity of the current rain episode, mm/h (0 = dry)


@dataclass
class WeatherDay:
    temperature: np.ndarray  # [T] °C
    precipitation: np.ndarray  # [T] mm/h
    condition: list[str]  # [T] clear, cloudy, rain


def weather_day(spec: SynthSpec, date: dt.date, state: WeatherState) -> WeatherDay:
    """One day of weather; ``state`` is updated in place to the end of the day."""
    p, steps, minutes = spec.params, spec.steps_per_day, spec.step_minutes
    rng = spec.rng("weather", date)
    doy = date.timetuple().tm_yday
    season_mean = 22.9 - 6.9 * math.cos(2 * math.pi * (doy - 20) / 365.25)  # Shenzhen: ~16 °C Jan, ~29 °C Jul
    wet_season = 0.4 + 1.4 * math.exp(-0.5 * ((doy - 190) / 60) ** 2)  # rain peaks June-August
    a_anom = math.exp(-minutes / (3 * 24 * 60))  # anomalies last ~3 days
    a_cloud = math.exp(-minutes / 180)
    p_end = min(1.0, minutes / (60 * p.rain_hours))

    hour = np.arange(steps) * minutes / 60
    p_start = p.rain_per_day * wet_season * minutes / 1440 * (0.6 + 0.8 * np.exp(-0.5 * ((hour - 15) / 3) ** 2))
    u = rng.random((steps, 2))
    z = rng.standard_normal((steps, 2))
    episode = np.exp(math.log(3.0) + 0.8 * rng.standard_normal(steps))  # mm/h if an episode starts here
    gust = rng.gamma(2.0, 0.5, steps)  # within-episode variability, mean 1

    temperature, precipitation = np.empty(steps), np.empty(steps)
    condition = []
    s = state
    for t in range(steps):
        if s.rain > 0 and u[t, 0] < p_end:
            s.rain = 0.0
        elif s.rain == 0 and u[t, 1] < p_start[t]:
            s.rain = float(episode[t])
        s.anomaly = a_anom * s.anomaly + math.sqrt(1 - a_anom**2) * 2.0 * z[t, 0]
        target = 1.0 if s.rain > 0 else 0.35
        s.cloud = min(1.0, max(0.0, a_cloud * s.cloud + (1 - a_cloud) * target + 0.08 * z[t, 1]))
        rain = min(80.0, round(s.rain * gust[t], 1))
        daily = 3.5 * (1 - 0.6 * s.cloud) * math.cos(2 * math.pi * (hour[t] - 14.5) / 24)
        temperature[t] = round(season_mean + s.anomaly + daily - 2.0 * (rain > 0), 1)
        precipitation[t] = rain
        condition.append("rain" if rain >= 0.1 else "cloudy" if s.cloud > 0.6 else "clear")
    return WeatherDay(temperature, precipitation, condition)
