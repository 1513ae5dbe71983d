"""Config + keyword overrides → one validated RunConfig (what ``fit(cfg, train__max_epochs=3)`` accepts)."""

import sys
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
        cfg = load_config(None, dotted, **config.model_dump())
    elif isinstance(config, Mapping):
        cfg = load_config(None, dotted, **{k: dict(v) for k, v in config.items()})
    else:
        cfg = load_config(config, dotted)
    return with_model_module(cfg)


def with_model_module(cfg: RunConfig) -> RunConfig:
    """``cfg`` with ``model.module`` naming the module that registered a model of the user's own (when importable,
    not ``__main__``), so the run's logged config rebuilds it anywhere: Ray workers, ``cityagent evaluate``, a retrain.
    """
    registry = sys.modules.get("cityagent.models.registry")  # not imported: no model was registered at run time
    if cfg.model.module or registry is None:
        return cfg
    from cityagent.models.user_models import MAIN, user_module

    module = user_module(cfg.model.name)
    if module in (None, MAIN):
        return cfg
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"module": module})})
