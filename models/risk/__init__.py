"""Traffic-accident risk forecasters over a grid: risk HA and a GSNet-inspired two-branch net."""

from cityagent.models.risk import risk_conv, risk_ha

__all__ = ["risk_conv", "risk_ha"]
