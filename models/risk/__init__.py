"""Traffic-accident risk forecasters over a grid: risk HA, a GSNet-inspired two-branch net and a calibrated GBRT."""

from cityagent.models.risk import risk_conv, risk_gbrt, risk_ha

__all__ = ["risk_conv", "risk_gbrt", "risk_ha"]
