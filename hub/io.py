"""Read and write a hub wherever it lives: a directory or fsspec URI of Parquet/CSV, or a SQL database."""

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd

from cityagent.hub.hub import Hub

if TYPE_CHECKING:
    from cityagent.hub.reach import Reach

SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "mssql", "oracle")


def is_sql_url(location: str | Path) -> bool:
    """True when ``location`` is a SQLAlchemy URL (``sqlite:///x.db``, ``postgresql://host/db``)."""
    scheme = str(location).split("://", 1)[0] if "://" in str(location) else ""
    return scheme.split("+", 1)[0] in SQL_SCHEMES


def read_hub(
    location: str | Path,
    prefix: str = "",
    recent: pd.Timedelta | None = None,
    reach: "Mapping[str, Reach] | None" = None,
) -> Hub:
    """Read a hub from a directory, an fsspec URI (``file://``, ``memory://``, ``s3://``) or a SQL URL.

    Args:
        location: where the hub lives.
        prefix: SQL only — table-name prefix, so several hubs can share one database.
        recent: files only — read the date partitions of the last ``recent`` (and a day more) before each table's
            newest, not its whole history; ``hub.origin.since`` says from when each shortened table is complete.
            A SQL hub is read whole.
        reach: files only — per table, what to read instead of ``recent``: the recent days and the dates around a
            few spans further back (``cityagent.hub.reach.Reach``); ``hub.origin.read_dates`` lists those dates.
    """
    if is_sql_url(location):
        from cityagent.hub.sql import read_sql_hub

        return read_sql_hub(str(location), prefix=prefix)
    from cityagent.hub.files import read_file_hub

    return read_file_hub(location, recent=recent, reach=reach)


def write_hub(
    hub: Hub,
    location: str | Path,
    format: Literal["parquet", "csv"] = "parquet",
    prefix: str = "",
) -> str:
    """Write ``hub`` atomically: a failure never leaves a partly overwritten hub behind.

    Args:
        hub: the tables and manifest to write.
        location: a directory, fsspec URI or SQL URL.
        format: file format for directories and URIs; Parquet tables are partitioned by local date.
        prefix: SQL only — table-name prefix.

    Returns:
        The location written, as a string.
    """
    if is_sql_url(location):
        from cityagent.hub.sql import write_sql_hub

        return write_sql_hub(hub, str(location), prefix=prefix)
    from cityagent.hub.files import write_file_hub

    return write_file_hub(hub, location, format=format)
