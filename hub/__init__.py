"""Sense: the city data hub — table contracts, validation, connectors, synthetic city, importers, windows."""

from cityagent.hub.hub import Hub, HubMeta
from cityagent.hub.io import read_hub, write_hub
from cityagent.hub.schema import TABLES, table_schema

__all__ = ["TABLES", "Hub", "HubMeta", "read_hub", "table_schema", "write_hub"]
