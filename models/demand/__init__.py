"""Demand forecasters over grid cells or stations: HM, ST-ResNet (grids), a station GCN."""

from cityagent.models.demand import hm, st_gcn_demand, st_resnet

__all__ = ["hm", "st_gcn_demand", "st_resnet"]
