"""The in-memory hub: named tables plus a manifest (name, step, timezone, provenance)."""

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from cityagent.config_errors import nearest
from cityagent.errors import HubError
from cityagent.hub.schema import TABLES

MANIFEST = "hub.json"


SYNTH_SOURCE = "cityagent synth"  # how the synthesiser signs its hubs (hub.json "source")


@dataclass
class HubMeta:
    """What a hub is: a name, its regular time step, its timezone and where it came from.

    Args:
        name: dataset name, e.g. ``sz-taxi`` or ``synthetic``.
        step: pandas offset alias of the reading interval (``5min``, ``15min``, ``1h``).
        timezone: IANA zone the city lives in; timestamps are stored timezone-aware.
        source: provenance (importer, file, seed).
        extra: dataset facts the protocols need (grid shape, holidays, slots per day, ...).
    """

    name: str = "city"
    step: str = "5min"
    timezone: str = "UTC"
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def step_delta(self) -> pd.Timedelta:
        try:
            return pd.Timedelta(pd.tseries.frequencies.to_offset(self.step))
        except ValueError as e:
            raise HubError(f"hub.json step {self.step!r} is not a pandas offset; use e.g. '5min' or '1h'") from e

    def timezone_problem(self) -> str | None:
        """Why ``timezone`` is no IANA zone (with the nearest one that is), or None when it is one."""
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(self.timezone)
            return None
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            near = nearest(str(self.timezone), zoneinfo.available_timezones(), cutoff=0.8)
            fix = f"did you mean {near!r}?" if near else "use an IANA name such as 'Asia/Shanghai'"
            return f"timezone {self.timezone!r} is not an IANA zone; {fix}"

    @property
    def synthetic(self) -> bool:
        """Written by the synthesiser (``cityagent hub synth``): the one hub that trains as dataset ``synthetic``."""
        return self.source.startswith(SYNTH_SOURCE)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HubMeta":
        unknown = set(d) - {"name", "step", "timezone", "source", "extra"}
        if unknown:
            raise HubError(f"hub.json has unknown keys {sorted(unknown)}; allowed: name, step, timezone, source, extra")
        return cls(**d)


@dataclass
class Hub:
    """A city's data: ``tables`` maps table name → DataFrame in the schema's long format."""

    tables: dict[str, pd.DataFrame]
    meta: HubMeta = field(default_factory=HubMeta)

    def __post_init__(self) -> None:
        unknown = set(self.tables) - set(TABLES)
        if unknown:
            raise HubError(f"unknown hub tables {sorted(unknown)}; hub tables are: {', '.join(TABLES)}")

    def has(self, name: str) -> bool:
        return name in self.tables

    def table(self, name: str) -> pd.DataFrame:
        """The table ``name``, or a HubError saying which tables the hub has."""
        if name not in self.tables:
            fix = (
                "the agent writes it as it decides: run `cityagent agent run` (or `cityagent demo`) on this hub first"
                if name == "decisions"
                else f"import or synthesise data that includes {name}"
            )
            near = nearest(name, self.tables) or nearest(name, TABLES)
            if near and near != name:  # a typo, not a table this hub lacks
                fix = f"did you mean {near!r}?" + ("" if near in self.tables else f" (this hub has none either: {fix})")
            raise HubError(
                f"this hub has no {name!r} table (it has: {', '.join(sorted(self.tables)) or 'none'}); {fix}"
            )
        return self.tables[name]

    def summary(self) -> dict[str, int]:
        return {name: len(df) for name, df in sorted(self.tables.items())}
