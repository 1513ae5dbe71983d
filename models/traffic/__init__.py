"""Traffic speed/flow forecasters over a road-sensor graph: baselines, GRU, T-GCN, STID, Graph WaveNet."""

from cityagent.models.traffic import gru, gwnet, ha, last_value, stid, tgcn

__all__ = ["gru", "gwnet", "ha", "last_value", "stid", "tgcn"]
