"""Config + keyword overrides → one validated RunConfig (what ``fit(cfg, train__max_epochs=3)`` accepts)."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cityagent.errors import ConfigError
from cityagent.training.config import RunConfig, load_config

ConfigLike = RunConfig | Mapping[str, Any] | str | Path | None


def resolve_config(config: ConfigLike, overrides: Mapping[str, Any]) -> RunConfig:
    """A validated RunConfig from a config object, dict or YAML path plus keyword overrides.

    Overrides are ``train__max_epochs=3`` (``__`` for dots), ``**{"train.max_epochs": 3}``, or whole sections
    such as ``train={"max_epochs": 3}`` (merged key by key).
    """
    dotted: dict[str, Any] = {}
    for key, value in overrides.items():
        key = key.replace("__", ".")
        if "." in key:
            dotted[key] = value
        elif isinstance(value, Mapping) and key in RunConfig.model_fields:
            dotted |= {f"{key}.{k}": v for k, v in value.items()}
        else:
            raise ConfigError(
                f"override {key!r} is not section.key; write e.g. train__max_epochs=3 or train={{'max_epochs': 3}}"
            )
    if isinstance(config, RunConfig):
        return load_config(None, dotted, **config.model_dump())
    if isinstance(config, Mapping):
        return load_config(None, dotted, **{k: dict(v) for k, v in config.items()})
    return load_config(config, dotted)
