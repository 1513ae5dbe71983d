"""Name → builder registry: ``build_model(cfg.model.name, **cfg.model.params)``, never an if/elif over names.

A builder is a class or function whose keyword arguments are a subset of the common params (see
``cityagent.models.params.COMMON_PARAMS``) plus its own hyperparameters with defaults. The engine may
pass every common param to every model; those a builder does not take are dropped, anything else unknown
is a ConfigError that names the nearest valid parameter.
"""

import difflib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cityagent.config_errors import nearest
from cityagent.errors import ConfigError
from cityagent.models.params import COMMON_PARAMS, check_common

DOMAINS = ("traffic", "demand", "risk", "any")  # 'any': a domain-agnostic model, listed under every domain
KINDS = ("deep", "baseline", "classical")

_REGISTRY: dict[str, "ModelInfo"] = {}
B = TypeVar("B", bound=Callable[..., Any])


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one model.

    Args:
        name: registry name, e.g. ``"tgcn"``.
        domain: ``traffic``, ``demand``, ``risk`` or ``any`` (e.g. the classical baselines).
        kind: ``deep`` (trainable nn.Module), ``baseline`` (parameter-free nn.Module) or ``classical``
            (scikit-learn estimator wrapper with ``fit``/``predict``).
        summary: first line of the builder's docstring.
        common: the common params the builder uses.
        required: params the builder needs and has no default for.
        params: its own hyperparameters and their defaults.
    """

    name: str
    domain: str
    kind: str
    builder: Callable[..., Any] = field(repr=False)
    summary: str
    common: tuple[str, ...]
    required: tuple[str, ...]
    params: dict[str, Any]


def register(name: str, domain: str, kind: str = "deep") -> Callable[[B], B]:
    """Decorator that registers a builder (class or function) under ``name``."""
    if domain not in DOMAINS or kind not in KINDS:
        raise ValueError(f"register({name!r}): domain must be one of {DOMAINS} and kind one of {KINDS}.")

    def wrap(builder: B) -> B:
        if name in _REGISTRY and not _same_definition(_REGISTRY[name].builder, builder):
            first = _where(_REGISTRY[name].builder)
            raise ValueError(f"model name {name!r} is registered twice ({first} and {_where(builder)}); rename one.")
        sig = inspect.signature(builder)
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
                raise ValueError(f"builder for {name!r} must take named keyword params only, not {p}.")
        names = list(sig.parameters)
        doc = inspect.getdoc(builder) or ""
        _REGISTRY[name] = ModelInfo(
            name=name,
            domain=domain,
            kind=kind,
            builder=builder,
            summary=doc.splitlines()[0] if doc else "",
            common=tuple(n for n in names if n in COMMON_PARAMS),
            required=tuple(n for n, p in sig.parameters.items() if p.default is p.empty),
            params={n: p.default for n, p in sig.parameters.items() if n not in COMMON_PARAMS},
        )
        return builder

    return wrap


def _where(builder: Callable[..., Any]) -> str:
    return f"{getattr(builder, '__module__', '?')}.{getattr(builder, '__qualname__', builder)}"


def _same_definition(old: Callable[..., Any], new: Callable[..., Any]) -> bool:
    """The same top-level class or function defined again (a re-run notebook cell, a reloaded module, a copy
    unpickled in a Ray worker), which replaces its entry; definitions inside a function cannot be told apart."""
    module, qualname = (getattr(new, "__module__", None), getattr(new, "__qualname__", None))
    top_level = qualname is not None and "<locals>" not in qualname
    same = (module, qualname) == (getattr(old, "__module__", None), getattr(old, "__qualname__", None))
    return old is new or (top_level and same)


def list_models(domain: str | None = None) -> list[str]:
    """Registered names, sorted; with ``domain``, those of that domain and the domain-agnostic ones."""
    if domain is not None and domain not in DOMAINS:
        raise ConfigError(f"unknown domain {domain!r}; choose one of {', '.join(DOMAINS)}.")
    return sorted(n for n, info in _REGISTRY.items() if domain in (None, info.domain) or info.domain == "any")


def model_info(name: str) -> ModelInfo:
    """The registry entry for ``name``; ConfigError listing the valid names when unknown."""
    if name not in _REGISTRY:
        near = nearest(name, _REGISTRY)
        hint = f" Did you mean {near!r}?" if near else ""
        raise ConfigError(f"unknown model {name!r}.{hint} Valid models: {', '.join(list_models())}.")
    return _REGISTRY[name]


def domain_note(name: str, domain: str) -> str | None:
    """Why model ``name`` may not suit a ``domain`` task: it is registered for another domain (where it was designed
    and benchmarked); None when it is registered for ``domain`` or ``any``."""
    info = model_info(name)
    if info.domain in ("any", domain):
        return None
    others = ", ".join(list_models(domain))
    return f"model {name!r} is registered for {info.domain}, not {domain}; {domain} models: {others}"


def _quoted(names: list[str]) -> str:
    return ", ".join(map(repr, names))


def _unknown_params(name: str, unknown: list[str], valid: set[str]) -> ConfigError:
    """The error for params ``name`` does not take: typos get the nearest valid name; params of other models
    (a config whose model.name alone was changed) name every model that has them, and how to reset."""
    own = sorted(valid - set(COMMON_PARAMS))  # the task gives the common params: model.params may not set them
    hints = []
    for key in unknown:
        if any(key in info.params for info in _REGISTRY.values()):
            continue
        near = difflib.get_close_matches(key, own, n=1, cutoff=0.4)
        task_near = difflib.get_close_matches(key, COMMON_PARAMS, n=1, cutoff=0.8)
        if near:
            hints.append(f" Did you mean {near[0]!r}" + (f" for {key!r}?" if len(unknown) > 1 else "?"))
        elif task_near:
            where = {"quantiles": "train.quantiles", "input_len": "task.params", "horizon": "task.params"}
            hints.append(f" {task_near[0]!r} comes from the task; set it in {where.get(task_near[0], 'the hub')}.")
    others = [m for m in list_models() if m != name]
    owners = [m for m in others if all(k in _REGISTRY[m].params for k in unknown)]
    which = "It is a parameter" if len(unknown) == 1 else "They are parameters"
    if not owners:
        owners, which = [m for m in others if any(k in _REGISTRY[m].params for k in unknown)], "Some are parameters"
    if owners:  # most likely a config written for another model, with only model.name changed
        hints.append(
            f" {which} of {_quoted(owners)}: when changing model.name, reset the params too "
            f"(model.params={{}} gives the defaults of {name!r})."
        )
    noun = "parameter" if len(unknown) == 1 else "parameters"
    return ConfigError(
        f"model {name!r} has no {noun} {_quoted(unknown)}.{''.join(hints)} Valid: {', '.join(own) or 'none'}."
    )


def check_param_names(name: str, params: Iterable[str]) -> ModelInfo:
    """The registry entry for ``name``, after checking it takes every parameter named in ``params`` (its own
    hyperparameters and the common ones); ConfigError naming the nearest valid one otherwise. Values are not
    checked: that needs the task (see ``cityagent.training.build.check_buildable``)."""
    info = model_info(name)
    valid = set(info.common) | set(info.params)
    unknown = [k for k in params if k not in valid and k not in COMMON_PARAMS]
    if unknown:
        raise _unknown_params(name, unknown, valid)
    return info


def build_model(name: str, **params: Any) -> Any:
    """Build the model registered as ``name`` (an nn.Module, or an estimator wrapper for kind='classical').

    Args:
        name: a name from ``list_models()``.
        **params: common params (num_nodes, in_features, input_len, horizon, target_channel, adjacency,
            grid, quantiles) and the model's own hyperparameters (see ``model_info(name).params``).
    """
    info = check_param_names(name, params)
    valid = set(info.common) | set(info.params)
    if params.get("quantiles") is not None and "quantiles" not in info.common:
        raise ConfigError(f"model {name!r} cannot predict quantiles; drop 'quantiles' or pick another model.")
    missing = [r for r in info.required if r not in params]
    own = [r for r in missing if r not in COMMON_PARAMS]
    if own:  # a builder (of a user's own model) without a default for a hyperparameter
        raise ConfigError(
            f"model {name!r} needs model.params {_quoted(own)}: its builder has no default for them; set them, "
            f"e.g. model.params.{own[0]}=…"
        )
    if missing:
        raise ConfigError(f"model {name!r} needs {', '.join(missing)}; the task should supply them.")
    checked = check_common(params)  # every common param passed is checked, used or not
    return info.builder(**{k: v for k, v in checked.items() if k in valid})
