"""Public dataset files known in shared/data, by name, so configs can say ``dataset: sz-taxi``."""

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cityagent.config_errors import nearest
from cityagent.errors import ConfigError
from cityagent.hub.hub import Hub

ENV_VAR = "CITYAGENT_SHARED_DATA"
PATH_OPTIONS = ("adj", "weather", "poi")  # options that name further files, relative to the data dir


@dataclass(frozen=True)
class KnownDataset:
    """A file in shared/data: which importer reads it, where it is (relative), and the importer options."""

    kind: str
    path: str
    options: dict[str, Any] = field(default_factory=dict)
    doc: str = ""


_JONAS_NYC = "demand/jonas_eastnet/JONAS-NYC-16x8-20151024-20160131.npz"
_JONAS_DC = "demand/jonas_eastnet/JONAS-DC-9x12-20151024-20160131.npz"
_SZ = "traffic/sz_taxi/"
DATASETS: dict[str, KnownDataset] = {
    "sz-taxi": KnownDataset(
        "tgcn-csv",
        _SZ + "sz_speed_first40roads.csv",
        {
            "adj": _SZ + "sz_adj.csv",
            "weather": _SZ + "sz_weather.csv",
            "poi": _SZ + "sz_poi.csv",
            "name": "sz-taxi",
        },
        "Shenzhen taxi speeds, first 40 of 156 roads, 15 min, Jan 2015",
    ),
    "didi-xian": KnownDataset(
        "uctb",
        "demand/uctb_didi/DiDi_Xian.tar.gz",
        {"name": "didi-xian"},
        "DiDi ride-hailing, Xi'an 16×16 grid, hourly, Oct–Nov 2016",
    ),
    "metro-chongqing": KnownDataset(
        "uctb",
        "demand/uctb_metro/Metro_Chongqing.tar.gz",
        {"name": "metro-chongqing"},
        "Chongqing metro, 113 stations, 18 slots/day, Aug 2016–Jul 2017",
    ),
    "metro-shanghai": KnownDataset(
        "uctb",
        "demand/uctb_metro/Metro_ShanghaiV1.tar.gz",
        {"name": "metro-shanghai"},
        "Shanghai metro (V1, the benchmark's version), 288 stations, 76 days",
    ),
    "metro-shanghai-full": KnownDataset(
        "uctb",
        "demand/uctb_metro/Metro_Shanghai.tar.gz",
        {"name": "metro-shanghai-full"},
        "Shanghai metro, 92 days (V1 + 16)",
    ),
    "chicago-risk": KnownDataset(
        "gsnet",
        "risk/gsnet_chicago/chicago_20x20_derived.npz",
        {"name": "chicago-risk"},
        "Chicago accident risk 20×20, hourly, Feb–Sep 2016 (GSNet)",
    ),
    "jonas-nyc": KnownDataset(
        "jonas", _JONAS_NYC, {"mode": "taxi", "name": "jonas-nyc"}, "NYC taxi 16×8, 30 min, 100 days"
    ),
    "jonas-nyc-bike": KnownDataset(
        "jonas", _JONAS_NYC, {"mode": "bike", "name": "jonas-nyc-bike"}, "NYC bike 16×8, 30 min, 100 days"
    ),
    "jonas-dc": KnownDataset(
        "jonas", _JONAS_DC, {"mode": "taxi", "name": "jonas-dc"}, "Washington DC taxi 9×12, hourly, 100 days"
    ),
    "jonas-dc-bike": KnownDataset(
        "jonas", _JONAS_DC, {"mode": "bike", "name": "jonas-dc-bike"}, "Washington DC bike 9×12, hourly"
    ),
}


def shared_data_dir() -> Path:
    """The data folder: ``$CITYAGENT_SHARED_DATA``, else ``../shared/data`` beside the repo or the cwd."""
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env).expanduser()
        if not p.is_dir():
            raise ConfigError(f"{ENV_VAR}={env} is not a directory; point it at the shared data folder")
        return p.resolve()
    repo = Path(__file__).resolve().parents[2]  # hub/importers/datasets.py -> repo root
    for base in (repo, *Path.cwd().resolve().parents, Path.cwd().resolve()):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate.resolve()
    raise ConfigError(f"no shared/data folder found beside {repo}; set {ENV_VAR} to the folder holding the datasets")


def known_dataset(name: str) -> KnownDataset:
    """The entry ``name``; an unknown name lists the known ones."""
    if name not in DATASETS:
        near = nearest(name, DATASETS)
        hint = f"did you mean {near!r}? " if near else ""
        raise ConfigError(f"unknown dataset {name!r}; {hint}known datasets are: {', '.join(DATASETS)}")
    return DATASETS[name]


def import_known(name: str, data_dir: str | Path | None = None, **overrides: Any) -> Hub:
    """Import the known dataset ``name`` from ``data_dir`` (default ``shared_data_dir()``).

    Args:
        name: a key of ``DATASETS``, e.g. ``sz-taxi``.
        data_dir: folder holding traffic/, demand/ and risk/.
        overrides: importer options replacing the entry's (paths here are used as given).
    """
    from cityagent.hub.importers import import_dataset  # the registry imports every importer

    entry = known_dataset(name)
    root = Path(data_dir) if data_dir is not None else shared_data_dir()
    options = {k: (root / v if k in PATH_OPTIONS else v) for k, v in entry.options.items()}
    return import_dataset(entry.kind, root / entry.path, **{**options, **overrides})
