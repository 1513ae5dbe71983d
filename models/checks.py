"""Checks of a deep model's own hyperparameters (sizes, dropout rates, flags), run in its constructor.

torch accepts a layer count of 0, a dropout of 1 and the string ``"maybe"`` for a flag, and builds a model that
is broken (fails in ``forward``) or silently another one (no layers, all-zero activations, a truthy flag). Each
check raises a one-line ConfigError naming the ``model.params`` key and its valid range.
"""

from typing import Any

import numpy as np

from cityagent.errors import ConfigError


def check_size(model: str, name: str, value: Any, minimum: int = 1, why: str = "") -> int:
    """``value`` as an int ≥ ``minimum`` (a layer count or a width); ``why`` explains an unusual minimum."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(
            f"{model} model.params.{name} must be an integer ≥ {minimum}{why}, got {value!r}; set it to {minimum} "
            "or more."
        )
    return int(value)


def check_sizes(model: str, **sizes: Any) -> None:
    """``check_size`` for each ``name=value``, all with minimum 1."""
    for name, value in sizes.items():
        check_size(model, name, value)


def check_dropout(model: str, value: Any, name: str = "dropout") -> float:
    """``value`` as a dropout probability in [0, 1): at 1 every activation is zeroed."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not 0 <= value < 1:
        raise ConfigError(f"{model} model.params.{name} must be a number in [0, 1), got {value!r}; e.g. 0.1.")
    return float(value)


def check_flag(model: str, name: str, value: Any) -> bool:
    """``value`` as a bool: a string such as ``"maybe"`` is truthy and would silently switch the option on."""
    if not isinstance(value, bool | np.bool_):
        raise ConfigError(f"{model} model.params.{name} must be true or false, got {value!r}.")
    return bool(value)
