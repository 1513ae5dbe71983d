"""A sweep's search space: what a user writes (a YAML file, ``--search KEY=SPEC`` or a Python dict) made into Ray
Tune domains and checked before any trial runs.

A spec is a list (a choice), ``{low: L, high: H}`` (a range; ``log: true`` samples on a log scale, whole-number ends
give whole numbers, ``high`` included), ``{grid_search: [...]}`` (every value, ``samples`` times each), a Ray Tune
domain (Python) or a constant. ``task.*`` keys are refused: the task's windows are built once, before the trials.
"""

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from cityagent.config_yaml import parse_yaml, read_yaml, yaml_problem
from cityagent.errors import ConfigError
from cityagent.hub.protocols import TaskData
from cityagent.models.registry import build_model, model_info
from cityagent.training.build import build_params, check_buildable
from cityagent.training.config import RunConfig
from cityagent.training.tune_classical import classical_search_space
from cityagent.training.tune_trial import trial_config

SPEC_HELP = "a list of choices, {low: L, high: H} (add log: true for a log scale) or {grid_search: [...]}"


def default_search_space(cfg: RunConfig) -> dict[str, Any]:
    """Learning rate and weight decay, plus the model's ``hidden_size`` and ``dropout`` when it has them."""
    from ray import tune

    space: dict[str, Any] = {"train.lr": tune.loguniform(1e-4, 1e-2), "train.weight_decay": tune.loguniform(1e-6, 1e-2)}
    params = model_info(cfg.model.name).params
    if "hidden_size" in params:
        space["model.params.hidden_size"] = tune.choice([16, 32, 64])
    if "dropout" in params:
        space["model.params.dropout"] = tune.uniform(0.0, 0.3)
    return space


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _range(key: str, spec: Mapping[str, Any]) -> Any:
    from ray import tune

    low, high, log = spec.get("low"), spec.get("high"), spec.get("log", False)
    if not (_number(low) and _number(high) and low < high) or not isinstance(log, bool):
        raise ConfigError(
            f"search space key {key!r}: range {dict(spec)} needs numbers low < high (and log: true or false)"
        )
    if log and low <= 0:
        raise ConfigError(f"search space key {key!r}: a log range needs low > 0, got {low}")
    if isinstance(low, int) and isinstance(high, int):  # Ray's integer ranges leave out ``upper``; ours keep high
        return (tune.lograndint if log else tune.randint)(low, high + 1)
    return (tune.loguniform if log else tune.uniform)(float(low), float(high))


def to_domain(key: str, spec: Any) -> Any:
    """``spec`` as Ray Tune takes it: a list → ``tune.choice``, ``{low, high[, log]}`` → a range; a Ray domain,
    ``{grid_search: [...]}`` or a constant as it is."""
    from ray import tune
    from ray.tune.search.sample import Domain

    if isinstance(spec, Domain):
        return spec
    if isinstance(spec, list | tuple):
        if not spec:
            raise ConfigError(f"search space key {key!r}: the list of choices is empty; give at least one value")
        return tune.choice(list(spec))
    if isinstance(spec, Mapping):
        if set(spec) == {"grid_search"} and isinstance(spec["grid_search"], list) and spec["grid_search"]:
            return {"grid_search": list(spec["grid_search"])}
        if {"low", "high"} <= set(spec) <= {"low", "high", "log"}:
            return _range(key, spec)
        raise ConfigError(f"search space key {key!r}: {dict(spec)} is not a search spec; give {SPEC_HELP}")
    return spec


def read_space(path: str | Path) -> dict[str, Any]:
    """A search-space YAML file: a mapping of dotted config keys to specs."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"search space file {p} does not exist; pass a YAML file of dotted key: spec lines")
    raw = read_yaml(p, "search space file")
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(
            f"search space file {p} must map dotted config keys to specs, e.g. 'train.lr: {{low: 1e-4, high: 1e-2, "
            "log: true}'"
        )
    return {str(k): v for k, v in raw.items()}


def parse_search(items: Iterable[str]) -> dict[str, Any]:
    """``["train.lr={low: 1e-4, high: 1e-2, log: true}", ...]`` (``--search``) as key → spec; a key given twice
    takes the last."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--search {item!r} must look like KEY=SPEC, e.g. 'model.params.hidden_size=[16,32]'")
        try:
            out[key.strip()] = parse_yaml(raw)
        except yaml.YAMLError as e:
            raise ConfigError(
                f"--search {item!r}: the spec is not valid YAML ({yaml_problem(e)}); quote it on the shell"
            ) from e
    return out


def fixed_keys(overrides: Mapping[str, Any] | Iterable[str]) -> set[str]:
    """The dotted keys overrides set (``train__lr=…``, ``train={'lr': …}``, ``"model.params={hidden_size: 8}"``);
    a mapping counts for the keys it holds, so ``model.params={}`` (a model's defaults) fixes nothing."""
    items: Iterable[tuple[str, Any]]
    if isinstance(overrides, Mapping):
        items = overrides.items()
    else:
        items = []
        for item in overrides:
            key, _, raw = item.partition("=")
            try:
                items.append((key, parse_yaml(raw)))
            except yaml.YAMLError:  # the config loader reports it; here it fixes the key alone
                items.append((key, raw))
    out: set[str] = set()

    def walk(key: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{key}.{k}", v)
        else:
            out.add(key)

    for key, value in items:
        walk(key.strip().replace("__", "."), value)
    return out


def _fixed(fixed: set[str], key: str) -> str | None:
    """The fixed key that sets ``key`` (itself, a section above it or a key inside it), if any."""
    return next((f for f in sorted(fixed) if f == key or key.startswith(f"{f}.") or f.startswith(f"{key}.")), None)


def _value(cfg: RunConfig, key: str) -> Any:
    node: Any = cfg.model_dump()
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return "its default"
        node = node[part]
    return node


def resolve_space(
    cfg: RunConfig, given: Mapping[str, Any] | None = None, fixed: Iterable[str] = ()
) -> tuple[dict[str, Any], list[str]]:
    """The space a sweep of ``cfg`` searches, and a line for each default key left out because it is fixed.

    Args:
        cfg: the resolved run config.
        given: key → spec, replacing the default space; None: the model's default (``default_search_space``,
            or ``classical_search_space`` for a tree model).
        fixed: dotted keys the user set (``fixed_keys``): left out of the default space; in ``given``, an error.
    """
    kind = model_info(cfg.model.name).kind
    if kind == "baseline":
        raise ConfigError(
            f"tune searches hyperparameters of models that learn; {cfg.model.name!r} is a parameter-free baseline "
            "with nothing to tune: train it with `cityagent train` (fit() in Python)"
        )
    fixed = set(fixed)
    notes: list[str] = []
    if given is not None:
        space = {key: to_domain(key, spec) for key, spec in given.items()}
        for key in space:
            if key == "task" or key.startswith("task."):
                raise ConfigError(
                    f"search space key {key!r}: task keys cannot be searched, the task's windows are built once "
                    "before the trials; compare tasks with separate `cityagent train` runs"
                )
            if (setter := _fixed(fixed, key)) is not None:
                raise ConfigError(
                    f"search space key {key!r} is also fixed by the override {setter} ({_value(cfg, setter)!r}); "
                    "drop one of the two"
                )
        if not space:
            raise ConfigError(f"the search space is empty; give at least one key → {SPEC_HELP}")
        return space, notes
    default = classical_search_space(cfg) if kind == "classical" else default_search_space(cfg)
    space = {}
    for key, domain in default.items():
        if _fixed(fixed, key) is None:
            space[key] = domain
        else:
            notes.append(f"{key} is fixed at {_value(cfg, key)!r} by an override, not searched")
    if not space:
        why = "every key of its default search space is fixed by an override" if default else "no default search space"
        raise ConfigError(
            f"{cfg.model.name!r} has {why}; give the keys to search with --search KEY=SPEC or --space FILE "
            "(search_space= in Python)"
        )
    return space, notes


def candidates(domain: Any) -> list[Any]:
    """The values of ``domain`` worth building: every choice, both ends of a range, or one sample."""
    from ray.tune.search.sample import Categorical, Domain, Float, Integer

    if isinstance(domain, Mapping) and "grid_search" in domain:
        return list(domain["grid_search"])
    if isinstance(domain, Categorical):
        return list(domain.categories)
    if isinstance(domain, Integer):  # Ray leaves ``upper`` out
        return [domain.lower, domain.upper - 1]
    if isinstance(domain, Float):
        return [domain.lower, domain.upper]
    if isinstance(domain, Domain):
        return [domain.sample()]
    return [domain]


def describe(domain: Any) -> str:
    """A spec as a person reads it (MLflow logs the space with it): ``log-uniform 0.0001 to 0.01``, ``one of [16,
    32]``; Ray's own objects print as ``<ray.tune.search.sample.Float object at 0x…>``."""
    from ray.tune.search.sample import Categorical, Domain, Float, Integer, LogUniform

    if isinstance(domain, Mapping) and "grid_search" in domain:
        return f"each of {list(domain['grid_search'])}"
    if isinstance(domain, Categorical):
        return f"one of {list(domain.categories)}"
    if isinstance(domain, Integer):
        return f"integers {domain.lower} to {domain.upper - 1}"
    if isinstance(domain, Float):
        scale = "log-uniform" if isinstance(domain.get_sampler(), LogUniform) else "uniform"
        return f"{scale} {domain.lower:g} to {domain.upper:g}"
    if isinstance(domain, Domain):
        return type(domain).__name__
    return repr(domain)


def _build(cfg: RunConfig, task: TaskData, trial: dict[str, Any], where: str) -> None:
    try:
        t = trial_config(cfg.model_dump(), trial)
        check_buildable(task, t.model, t.train.quantiles)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from e


def check_space(cfg: RunConfig, task: TaskData, space: dict[str, Any]) -> None:
    """Build the model for every choice and both range ends of each key, then once with every key set, so a key
    that is not a config path, or a value the model refuses, fails here, named, not in every trial on the cluster."""
    for key, domain in space.items():
        for value in candidates(domain):
            _build(cfg, task, {key: value}, f"search space {key}={value!r}")
    _build(cfg, task, {k: candidates(d)[0] for k, d in space.items()}, f"search space {sorted(space)}")


def without_idle_params(
    cfg: RunConfig, task: TaskData, space: dict[str, Any], say: Callable[[str], None]
) -> dict[str, Any]:
    """``space`` less ``model.params.dropout`` when the model built at both of its ends is the same (a 1-layer GRU
    passes no dropout to torch): searching it would spend trials on noise."""
    key = "model.params.dropout"
    if key not in space or model_info(cfg.model.name).kind != "deep":
        return space
    built = []
    for value in candidates(space[key]):
        t = trial_config(cfg.model_dump(), {key: value})
        built.append(_traits(build_model(t.model.name, **build_params(task, t.model, t.train.quantiles))))
    if len(built) < 2 or any(b != built[0] for b in built[1:]):
        return space
    say(f"{key} is not searched: {cfg.model.name} as configured is the same model at any dropout (no effect)")
    return {k: v for k, v in space.items() if k != key}


def _traits(model: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """Each submodule's type and plain settings (``p`` of a Dropout, ``dropout`` of a GRU): what a hyperparameter
    can change in a model besides the values of its weights."""
    plain = (int, float, bool, str, tuple)
    out = []
    for name, module in model.named_modules():
        attrs = {k: v for k, v in vars(module).items() if not k.startswith("_") and k != "training"}
        out.append((name, type(module).__name__, {k: v for k, v in attrs.items() if isinstance(v, plain)}))
    return out
