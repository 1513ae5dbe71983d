"""Small hand-made hubs for tests: valid by construction, so each test breaks one thing."""

import numpy as np
import pandas as pd

from cityagent.hub import Hub, HubMeta


def tiny_hub(sensors: int = 3, zones: int = 2, steps: int = 24, step: str = "15min", tz: str = "Asia/Shanghai") -> Hub:
    """A valid hub with every table, ``steps`` readings per sensor and zone."""
    rng = np.random.default_rng(0)
    ts = pd.date_range("2026-03-01 22:00", periods=steps, freq=step, tz=tz)  # crosses midnight: 2 partitions
    sids = [f"s{i}" for i in range(sensors)]
    zids = [f"z{i}" for i in range(zones)]
    traffic = pd.DataFrame(
        {
            "sensor_id": np.repeat(sids, steps),
            "ts": np.tile(ts, sensors),
            "speed": rng.uniform(10, 60, sensors * steps),
            "flow": rng.uniform(0, 100, sensors * steps),
        }
    )
    demand = pd.DataFrame(
        {
            "zone_id": np.repeat(zids, steps),
            "ts": np.tile(ts, zones),
            "count": rng.poisson(5, zones * steps).astype(float),
        }
    )
    return Hub(
        {
            "traffic": traffic,
            "demand": demand,
            "sensors": pd.DataFrame(
                {"sensor_id": sids, "lat": 22.5 + 0.01 * np.arange(sensors), "lon": np.full(sensors, 114.05)}
            ),
            "zones": pd.DataFrame({"zone_id": zids, "lat": [22.5] * zones, "lon": 114.0 + 0.01 * np.arange(zones)}),
            "edges": pd.DataFrame({"src": sids[:-1], "dst": sids[1:], "weight": 1.0, "kind": "road"}),
            "incidents": pd.DataFrame(
                {
                    "ts": ts[[3, 7]],
                    "lat": [22.51, 22.52],
                    "lon": [114.05, 114.06],
                    "cell_id": [zids[0], zids[-1]],
                    "severity": [1.0, 2.0],
                }
            ),
            "weather": pd.DataFrame(
                {
                    "ts": ts,
                    "temperature": np.linspace(15, 20, steps),
                    "precipitation": np.zeros(steps),
                    "condition": "clear",
                }
            ),
        },
        HubMeta(name="tiny", step=step, timezone=tz, source="tests"),
    )
