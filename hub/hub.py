"""The in-memory hub: named tables plus a manifest (name, step, timezone, provenance)."""

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Literal

import pandas as pd

from cityagent import durations
from cityagent.config_errors import nearest
from cityagent.errors import HubError
from cityagent.hub.schema import TABLES

MANIFEST = "hub.json"


SYNTH_SOURCE = "cityagent synth"  # how the synthesiser signs its hubs (hub.json "source")

# manifest key -> (JSON type it must have, an example value); step and timezone have no safe default
KEYS: dict[str, tuple[type, str]] = {
    "name": (str, '"shenzhen"'),
    "step": (str, '"15min"'),
    "timezone": (str, '"Asia/Shanghai"'),
    "source": (str, '"own data"'),
    "extra": (dict, '{"grid": [16, 8]}'),
}
REQUIRED = ("step", "timezone")
_JSON_TYPES = {str: "a string", dict: "an object", list: "a list", bool: "true/false", type(None): "null"}


def _json_type(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"the number {value}"
    return _JSON_TYPES.get(type(value), type(value).__name__)


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
            return durations.step_delta(self.step)
        except (ValueError, TypeError) as e:  # TypeError: a number, as in "step": 15
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
    def from_dict(cls, d: object, where: str = MANIFEST, example: "HubMeta | None" = None) -> "HubMeta":
        """A manifest as read from a file or SQL row: ``step`` and ``timezone`` are required, every key has its type.

        Args:
            d: the parsed JSON.
            where: the file or table named in errors.
            example: a manifest inferred from the data, whose step and timezone the errors suggest.
        """
        if not isinstance(d, dict):
            raise HubError(f"{where} holds {_json_type(d)}, not a JSON object; write e.g. {_minimal()}")
        unknown = set(d) - set(KEYS)
        if unknown:
            raise HubError(f"{where} has unknown keys {sorted(unknown)}; allowed: {', '.join(KEYS)}")
        for key in REQUIRED:  # a silent 5min/UTC default once made training invent 2 of every 3 readings
            if key not in d:
                value = _example(example, key) or KEYS[key][1]
                what = "the reading interval" if key == "step" else "the city's IANA zone"
                raise HubError(f'{where} has no "{key}"; add {what}, e.g. "{key}": {value}')
        for key, value in d.items():
            kind, sample = KEYS[key]
            if not isinstance(value, kind):
                raise HubError(
                    f'{where}: "{key}" is {_json_type(value)} but must be {_JSON_TYPES[kind]}, e.g. "{key}": {sample}'
                )
        return cls(**d)


def step_text(step: pd.Timedelta) -> str:
    """A pandas offset alias for ``step`` as a person writes it: ``15min``, ``1h``, ``1D``."""
    for unit, alias in ((pd.Timedelta("1D"), "D"), (pd.Timedelta("1h"), "h"), (pd.Timedelta("1min"), "min")):
        if step % unit == pd.Timedelta(0):
            return f"{step // unit}{alias}"
    return f"{int(step.total_seconds())}s"


def per_step(step: str) -> str:
    """``step`` as the tail of a unit: ``hour`` for 1 h, else ``30 min`` (``riders per hour``)."""
    minutes = durations.step_delta(step).total_seconds() / 60
    return "hour" if minutes == 60 else lead_text(minutes)


def lead_text(minutes: float) -> str:
    """A lead time as a person says it: ``15 min``, ``1 h``, ``1 d``."""
    if minutes % 1440 == 0:
        return f"{minutes / 1440:g} d"
    return f"{minutes / 60:g} h" if minutes % 60 == 0 else f"{minutes:g} min"


def _example(meta: HubMeta | None, key: str) -> str | None:
    """The data's own step or zone as an example value; a fixed offset (``Etc/GMT-8``) is no zone to copy."""
    if meta is None:
        return None
    if key == "step":
        return f'"{step_text(meta.step_delta)}"'
    return None if meta.timezone.startswith(("Etc/", "UTC")) else f'"{meta.timezone}"'


def _minimal() -> str:
    return "{" + ", ".join(f'"{k}": {KEYS[k][1]}' for k in ("name", *REQUIRED)) + "}"


@dataclass
class Origin:
    """Where a hub was read from, for what validation can only say about the source (files it did not read)."""

    kind: Literal["files", "sql"]
    tables: dict[str, str] = field(default_factory=dict)  # table -> what held it: 'traffic.csv', 'traffic/ (3 files)'
    strays: list[str] = field(default_factory=list)  # hub-folder entries that are no table: 'trafic.csv'
    warnings: list[tuple[str, str, str]] = field(default_factory=list)  # (table, column, message) from raw files
    since: dict[str, pd.Timestamp] = field(default_factory=dict)  # table -> every reading from here on was read
    read_dates: dict[str, frozenset[date]] = field(default_factory=dict)  # table -> local dates read before since

    def first_unread(self, table: str, times: pd.DatetimeIndex) -> pd.Timestamp | None:
        """The first of ``times`` (in the hub's timezone) whose readings of ``table`` were not read, if any."""
        since = self.since.get(table)
        if since is None:
            return None
        read = self.read_dates.get(table, frozenset())
        for t in times:
            if t < since and t.date() not in read:
                return t
        return None


@dataclass
class Hub:
    """A city's data: ``tables`` maps table name → DataFrame in the schema's long format."""

    tables: dict[str, pd.DataFrame]
    meta: HubMeta = field(default_factory=HubMeta)
    origin: Origin | None = field(default=None, repr=False, compare=False)  # None: built in memory

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
            stray = self._stray_for(name)
            if stray:  # the data is there under a name the reader skips
                fix = f"the hub folder holds {stray}, which is not read: rename it {name}{_suffix(stray)}"
            raise HubError(
                f"this hub has no {name!r} table (it has: {', '.join(sorted(self.tables)) or 'none'}); {fix}"
            )
        return self.tables[name]

    def _stray_for(self, name: str) -> str | None:
        """A file or folder of the hub that is probably table ``name`` misnamed (``trafic.csv``, ``Traffic.csv``)."""
        for stray in self.origin.strays if self.origin else ():
            if stray_table(stray) == name:
                return stray
        return None

    def summary(self) -> dict[str, int]:
        return {name: len(df) for name, df in sorted(self.tables.items())}


def _suffix(entry: str) -> str:
    return "/" if entry.endswith("/") else "." + entry.split(".", 1)[1] if "." in entry else ""


def stray_table(entry: str) -> str | None:
    """The hub table a misnamed file or folder most likely holds (``trafic.csv`` → ``traffic``), or None."""
    return nearest(entry.rstrip("/").split(".", 1)[0], TABLES, cutoff=0.75)
