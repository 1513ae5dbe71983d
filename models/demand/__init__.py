"""Demand forecasters over grid cells or stations: HM, ST-ResNet (grids), a station GCN, GBRT on cell features."""

from cityagent.models.demand import gbrt_demand, hm, st_gcn_demand, st_resnet

__all__ = ["gbrt_demand", "hm", "st_gcn_demand", "st_resnet"]
