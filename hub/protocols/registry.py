"""Protocols by name: ``build_task(hub, 'gsnet')`` instead of an if/elif over dataset conventions."""

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from cityagent.errors import ConfigError
from cityagent.hub.hub import Hub
from cityagent.hub.protocols.task import TaskData

Builder = Callable[..., TaskData]
PROTOCOLS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Register a builder ``f(hub, **params) -> TaskData`` under ``name``."""

    def add(fn: Builder) -> Builder:
        if name in PROTOCOLS:
            raise ConfigError(f"protocol {name!r} is registered twice")
        PROTOCOLS[name] = fn
        return fn

    return add


def protocol_params(protocol: str) -> dict[str, Any]:
    """The parameters of a protocol and their defaults."""
    sig = inspect.signature(_builder(protocol))
    return {k: p.default for k, p in list(sig.parameters.items())[1:]}


def _builder(protocol: str) -> Builder:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; protocols are: {', '.join(sorted(PROTOCOLS))}")
    return PROTOCOLS[protocol]


def build_task(hub: Hub, protocol: str = "strict", **params: Any) -> TaskData:
    """Windows, splits, scalers and graph for ``hub`` under a named protocol.

    Args:
        hub: the data.
        protocol: ``strict`` (default) or a published protocol (``tgcn``, ``uctb``, ``gsnet``, ``eastnet``).
        params: the protocol's parameters; unknown names are an error that suggests the nearest valid one.
    """
    builder = _builder(protocol)
    valid = list(protocol_params(protocol))
    for key in params:
        if key not in valid:
            near = difflib.get_close_matches(key, valid, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise ConfigError(f"protocol {protocol!r} has no parameter {key!r}; {hint}valid: {', '.join(valid)}")
    return builder(hub, **params)
