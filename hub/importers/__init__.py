"""Importers that turn public dataset files into in-memory hubs (shared/data/*/SOURCES.md describes them).

``import_dataset('uctb', 'Metro_Chongqing.tar.gz')`` picks an importer by kind;
``cityagent.hub.importers.datasets.import_known('sz-taxi')`` imports a file known in shared/data by name.
"""

import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cityagent.errors import ConfigError
from cityagent.hub.hub import Hub
from cityagent.hub.importers.gsnet import gsnet_tensor, import_gsnet
from cityagent.hub.importers.jonas import import_jonas
from cityagent.hub.importers.tgcn_csv import import_tgcn_csv
from cityagent.hub.importers.uctb import import_uctb

IMPORTERS: dict[str, Callable[..., Hub]] = {
    "tgcn-csv": import_tgcn_csv,
    "uctb": import_uctb,
    "gsnet": import_gsnet,
    "jonas": import_jonas,
}


TRUE, FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def _number(kind: str, key: str, text: str, as_int: bool, as_float: bool) -> int | float:
    for cast, allowed in ((int, as_int), (float, as_float)):
        if allowed:
            try:
                return cast(text.strip())
            except ValueError:
                pass
    whole = " whole" if not as_float else ""
    raise ConfigError(f"importer {kind!r} option {key}={text!r} must be a{whole} number")


def _typed(kind: str, fn: Callable[..., Hub], options: dict[str, Any]) -> dict[str, Any]:
    """Options given as text (``--set key=value``) as the bool, int or float the importer's signature names."""
    hints = typing.get_type_hints(fn)
    out = {}
    for key, value in options.items():
        kinds = set(typing.get_args(hints.get(key)) or (hints.get(key),))
        if isinstance(value, str) and str not in kinds:
            text = value.strip().lower()
            if type(None) in kinds and text in ("none", "auto"):
                value = None
            elif bool in kinds:
                if text not in TRUE + FALSE:
                    raise ConfigError(f"importer {kind!r} option {key}={value!r} must be true or false")
                value = text in TRUE
            elif kinds & {int, float}:
                value = _number(kind, key, value, int in kinds, float in kinds)
        out[key] = value
    return out


def import_dataset(kind: str, path: str | Path, **options: Any) -> Hub:
    """Import ``path`` with the importer ``kind`` (a key of ``IMPORTERS``), passing ``options`` through.

    Args:
        kind: ``tgcn-csv``, ``uctb``, ``gsnet`` or ``jonas``.
        path: the dataset file.
        options: importer keyword options (see each ``import_*`` function).
    """
    if kind not in IMPORTERS:
        raise ConfigError(f"unknown importer kind {kind!r}; valid kinds are: {', '.join(sorted(IMPORTERS))}")
    try:
        return IMPORTERS[kind](path, **_typed(kind, IMPORTERS[kind], options))
    except TypeError as e:
        if "unexpected keyword" not in str(e):
            raise
        raise ConfigError(f"importer {kind!r} got an unknown option ({e}); see import_{kind.replace('-', '_')}") from e


__all__ = [
    "IMPORTERS",
    "gsnet_tensor",
    "import_dataset",
    "import_gsnet",
    "import_jonas",
    "import_tgcn_csv",
    "import_uctb",
]
