"""Time-of-day shapes: road load and trip rates by hour, weekday or weekend, residential or business."""

import numpy as np


def bump(hour: np.ndarray, at: float, width: float) -> np.ndarray:
    """A Gaussian bump centred at hour ``at`` with standard deviation ``width`` hours."""
    return np.exp(-0.5 * ((hour - at) / width) ** 2)


def awake(hour: np.ndarray, rise: float = 6.5, rest: float = 22.5) -> np.ndarray:
    """Smooth 0 -> 1 -> 0 plateau for the hours the city is up."""
    return 1.0 / (1.0 + np.exp(-(hour - rise) / 0.6)) / (1.0 + np.exp(-(rest - hour) / 0.8))


def road_load(hour: np.ndarray, weekday: bool) -> np.ndarray:
    """Relative traffic load on roads (0 at night, ~1 at a weekday peak)."""
    if weekday:
        return 0.06 + 0.32 * awake(hour) + 0.62 * bump(hour, 8.25, 0.85) + 0.7 * bump(hour, 18.25, 1.1)
    return 0.06 + 0.3 * awake(hour, 8.0, 23.5) + 0.2 * bump(hour, 11.5, 2.0) + 0.28 * bump(hour, 17.0, 2.0)


def trip_rates(hour: np.ndarray, weekday: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Relative (departures, arrivals) per zone kind; daily means are about 0.8."""
    if not weekday:  # leisure: late mornings, busy evenings, residential zones quieter
        leisure = 0.12 + 0.25 * awake(hour, 8.5, 24.0) + 0.7 * bump(hour, 11.5, 2.5) + 0.9 * bump(hour, 17.5, 3.0)
        late = 0.5 * bump(hour, 22.0, 1.5)
        return {
            "residential": (0.9 * leisure + 0.2 * bump(hour, 10.0, 1.5), 0.9 * leisure + late),
            "business": (1.1 * leisure + late, 1.1 * leisure),
            "mixed": (leisure + 0.5 * late, leisure + 0.5 * late),
        }
    base = 0.12 + 0.5 * awake(hour)
    home_out = base + 1.8 * bump(hour, 8.0, 0.9) + 0.4 * bump(hour, 13.0, 2.0) + 0.4 * bump(hour, 18.5, 1.5)
    home_in = base + 0.4 * bump(hour, 8.0, 0.9) + 0.4 * bump(hour, 13.0, 2.0) + 1.8 * bump(hour, 18.8, 1.3)
    work_out = base + 0.3 * bump(hour, 8.5, 1.0) + 0.7 * bump(hour, 12.5, 1.2) + 1.9 * bump(hour, 18.3, 1.1)
    work_in = base + 1.9 * bump(hour, 8.6, 0.8) + 0.7 * bump(hour, 13.0, 1.2) + 0.3 * bump(hour, 18.0, 1.2)
    return {
        "residential": (home_out, home_in),
        "business": (work_out, work_in),
        "mixed": ((home_out + work_out) / 2, (home_in + work_in) / 2),
    }
