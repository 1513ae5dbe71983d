"""The task a config names: find the hub (synthetic city, known dataset or a location), window it, fingerprint it."""

import hashlib
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cityagent.errors import ConfigError, HubError
from cityagent.home import home_dir
from cityagent.hub.grid import node_grid
from cityagent.hub.hub import MANIFEST, Hub
from cityagent.hub.io import is_sql_url, read_hub
from cityagent.hub.protocols import TaskData, build_task, protocol_params
from cityagent.hub.protocols.common import node_table
from cityagent.hub.validate import validate_hub
from cityagent.training.config import TaskConfig

log = logging.getLogger(__name__)

# domain → (hub table, target column) passed to protocols that take them, unless the config sets them
DOMAIN_TARGET = {"traffic": ("traffic", "speed"), "demand": ("demand", "count"), "risk": ("incidents", "severity")}
DEFAULT_CITY = {"sensors": 64, "zones": 16, "days": 7, "step": "5min", "seed": 0}  # ~1 s to synthesise


@dataclass(frozen=True)
class HubFingerprint:
    """What data a run saw: a sha256 over the window arrays, nodes, time range and sample anchors.

    Args:
        sha256: hex digest; equal digests mean the same windows were trained and tested on.
        source: where the hub came from (a path, URL or ``dataset:<name>``).
        nodes: N.
        steps: T, length of the shared time axis.
        start, end: first and last step (ISO, hub timezone).
    """

    sha256: str
    source: str
    nodes: int
    steps: int
    start: str
    end: str

    @property
    def short(self) -> str:
        return self.sha256[:12]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def task_name(cfg: TaskConfig) -> str:
    """``<domain>-<dataset>``, e.g. ``traffic-synthetic``: the name a model is registered and served under."""
    return f"{cfg.domain}-{cfg.dataset}"


def _known_datasets() -> dict[str, Any]:
    from cityagent.hub.importers.datasets import DATASETS

    return DATASETS


def resolve_hub(cfg: TaskConfig) -> tuple[Hub, str]:
    """The hub ``cfg`` names and a string saying where it came from; a hub read from a location is validated.

    Only the default location of the synthetic city (``$CITYAGENT_HOME/hub``) is synthesised when missing: a
    ``task.hub`` that names nothing is an error, so a mistyped path never trains on a made-up city.
    """
    datasets = _known_datasets()
    if cfg.dataset in datasets and cfg.dataset != "synthetic" and not cfg.hub:  # a hub named outright wins
        from cityagent.hub.importers.datasets import import_known

        return import_known(cfg.dataset), f"dataset:{cfg.dataset}"
    if cfg.dataset != "synthetic" and not cfg.hub:
        raise ConfigError(
            f"unknown dataset {cfg.dataset!r}; use 'synthetic', one of {', '.join(datasets)}, "
            f"or set task.hub to a hub location"
        )
    location = cfg.hub or str(home_dir() / "hub")
    local = not is_sql_url(location) and "://" not in location
    if local and cfg.hub and not (Path(location).is_dir() and any(Path(location).iterdir())):
        raise HubError(
            f"no hub at {location}: check the path, or write one there with `cityagent hub synth --out {location}`, "
            "`cityagent hub import` or `cityagent hub copy`"
        )
    if local and not cfg.hub and not (Path(location) / MANIFEST).is_file():
        from cityagent.hub.synth import synthesize

        log.warning("no hub at %s: synthesising a default city there (%s)", location, DEFAULT_CITY)
        synthesize(location, progress=False, **DEFAULT_CITY)
    if cfg.hub_prefix and not is_sql_url(location):
        raise ConfigError(
            f"task.hub_prefix={cfg.hub_prefix!r} names tables in a SQL database, but the hub {location} is not a SQL "
            "URL: drop the prefix, or point task.hub at the database"
        )
    hub = read_hub(location, prefix=cfg.hub_prefix)
    check_named(cfg, hub, location)
    check_valid(hub, location)
    return hub, str(location)


def slug(name: str) -> str:
    """A hub name as a dataset name: ``DiDi_Xian`` → ``didi-xian``."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")


class OtherDataset(ConfigError):
    """The hub holds another city than ``task.dataset`` names; ``held`` is the hub's name, ``what`` says why."""

    def __init__(self, message: str, held: str, what: str) -> None:
        super().__init__(message)
        self.held, self.what = held, what


def check_named(cfg: TaskConfig, hub: Hub, location: str) -> None:
    """Refuse to register one city's model under another's name: as ``synthetic`` (beside the synthetic city's
    models, replacing their champion), or as a known dataset the hub is not (a bike hub trained with the taxi
    config would become ``demand-jonas-nyc``). Any other name is the user's to choose."""
    if cfg.dataset == "synthetic":
        if hub.meta.synthetic:
            return
        what = "not the synthetic city"
    elif cfg.dataset in _known_datasets() and slug(hub.meta.name) != cfg.dataset:
        what = f"not the known dataset {cfg.dataset!r}"
    else:
        return
    name = slug(hub.meta.name) or "city"
    suggestion = name if name != "synthetic" else "my-city"
    held = f"{hub.meta.name!r} ({hub.meta.source or 'no source recorded'})"
    raise OtherDataset(
        f"the hub {location} holds {held}, {what}, but "
        f"task.dataset is {cfg.dataset!r}: its models would be registered as '{task_name(cfg)}'; name this city "
        f"with task.dataset={suggestion} (registered as '{cfg.domain}-{suggestion}')",
        held,
        what,
    )


def check_valid(hub: Hub, location: str) -> None:
    """Refuse a hub that breaks the table contracts (as ``cityagent hub validate`` reports it): windows built from
    it would carry the fault into training, silently or as a traceback far from its cause."""
    report = validate_hub(hub)
    if report.warnings:
        log.warning("hub %s: %d validation warning(s), e.g. %s", location, len(report.warnings), report.warnings[0])
    if not report.ok:
        shown = "; ".join(str(i) for i in report.errors[:3])
        more = f" (and {len(report.errors) - 3} more)" if len(report.errors) > 3 else ""
        raise HubError(
            f"hub {location} is not valid: {shown}{more}; fix the data (`cityagent hub validate {location}` "
            "lists every problem)"
        )


def task_params(cfg: TaskConfig) -> dict[str, Any]:
    """The protocol parameters: the config's, plus the domain's table and target where the protocol takes them."""
    params = dict(cfg.params)
    accepted = protocol_params(cfg.protocol)
    table, target = DOMAIN_TARGET[cfg.domain]
    if "table" in accepted and "table" not in params:
        params["table"] = table
        if "target" in accepted and "target" not in params:
            params["target"] = target
    return params


def fingerprint(task: TaskData, source: str) -> HubFingerprint:
    """sha256 over the bytes of the shared window arrays, the node ids, the time axis and every split's anchors."""
    h = hashlib.sha256()
    seen: set[int] = set()
    for split in (task.train, task.val, task.test):
        for arr in (split.x, split.y):
            if id(arr) not in seen:  # splits usually share one x and one y
                seen.add(id(arr))
                h.update(str(arr.shape).encode() + str(arr.dtype).encode())
                h.update(np.ascontiguousarray(arr).tobytes())
        h.update(np.ascontiguousarray(split.anchors).tobytes())
    h.update("\x1f".join(task.nodes).encode())
    times = task.train.times
    h.update(f"{times[0].isoformat()}|{times[-1].isoformat()}|{len(times)}|{task.step}".encode())
    return HubFingerprint(
        h.hexdigest(), source, len(task.nodes), len(times), times[0].isoformat(), times[-1].isoformat()
    )


def hub_facts(hub: Hub, task: TaskData) -> dict[str, Any]:
    """What reports and plots say about the hub's data: the target's unit, node names, operating hours."""
    facts: dict[str, Any] = {}
    target = task.extra.get("target", task.feature_names[0])
    units = hub.meta.extra.get("units")  # an importer's per column (riders per hour); else the domain's is used
    if isinstance(units, dict) and units.get(target):
        facts["units"] = str(units[target])
    static = node_table(hub, task.nodes)
    if static is not None and "name" in static:
        facts["node_names"] = [str(v) for v in static["name"]]
    if hub.meta.extra.get("slots_per_day"):  # a lead of k steps may jump the closed night
        facts["operating_hours"] = (
            f"{hub.meta.extra['slots_per_day']} slots a day from {hub.meta.extra.get('first_slot', '00:00')}"
        )
    return facts


def load_task(cfg: TaskConfig) -> tuple[TaskData, HubFingerprint]:
    """Read the hub, build the protocol's windows and fingerprint the slice used.

    Args:
        cfg: the ``task`` section: domain, dataset ('synthetic', a known dataset name, or any name with
            ``hub`` set), protocol and its parameters.

    Raises:
        ConfigError: unknown dataset (valid ones listed) or protocol parameter.
        HubError: a hub too short for the window (steps it has and needs) or without training windows.
    """
    hub, source = resolve_hub(cfg)
    task = build_task(hub, cfg.protocol, **task_params(cfg))
    if len(task.train) == 0:
        spec = task.spec
        raise HubError(
            f"{source}: the {cfg.protocol} protocol left no training windows; the hub has "
            f"{len(task.train.times)} steps and one window needs {spec.need()} "
            f"({spec.input_len} in, horizon {spec.horizon}); use a longer hub or a shorter window"
        )
    empty = [name for name, split in (("validation", task.val), ("test", task.test)) if len(split) == 0]
    if "test" in empty:  # a run is scored on test: without it, training would run to the end and then fail
        raise HubError(
            f"{source}: the {cfg.protocol} protocol left no {' and no '.join(empty)} windows (train "
            f"{len(task.train)}); the hub's last part lacks complete windows of {task.spec.need()} steps — check "
            f"it for a gap at the end (`cityagent hub validate {source}` shows gaps), or use a longer hub"
        )
    if "grid" not in task.extra and (grid := node_grid(hub, task.nodes)):
        task.extra["grid"] = list(grid)  # zones of a gridded hub: grid models can use it
    task.extra.update(hub_facts(hub, task))
    fp = fingerprint(task, source)
    log.info(
        "task %s: %s samples, %d nodes, features %s, fingerprint %s",
        task_name(cfg),
        task.counts(),
        len(task.nodes),
        task.feature_names,
        fp.short,
    )
    return task, fp
