"""Typed training configs: YAML in configs/ → ``RunConfig``, with ``key=value`` overrides.

Unknown keys are rejected with their dotted path and the nearest valid key, so YAML never drifts from code.
"""

import importlib.util
import re
import sys
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from cityagent.config_errors import key_hint, nearest
from cityagent.config_yaml import parse_yaml, read_yaml, yaml_problem
from cityagent.errors import ConfigError

Domain = Literal["traffic", "demand", "risk"]


class KeyProblem(ValueError):
    """A validator's complaint about ``key`` below the field it checks (``horizon`` of ``task.params``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _admits_bool(annotation: Any) -> bool:
    return annotation is bool or annotation is Any or any(_admits_bool(a) for a in get_args(annotation))


def text_only(annotation: Any) -> bool:
    """A field that holds text (``str`` or ``str | None``) and no number, boolean or container."""
    kinds = set(get_args(annotation)) or {annotation}
    return str in kinds and kinds <= {str, type(None)}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    @field_validator("*", mode="before")
    @classmethod
    def _scalars(cls, value: Any, info: ValidationInfo) -> Any:
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(value, bool) and text_only(annotation):  # YAML reads unquoted yes/no/on/off as booleans
            raise ValueError(
                f"expected text, but YAML read the boolean {str(value).lower()} (from an unquoted true/false/yes/no/"
                'on/off); quote the value, e.g. experiment: "yes" in YAML'
            )
        if isinstance(value, bool) and not _admits_bool(annotation):
            # pydantic takes YAML's true/false as 1/0 where a number belongs (train.max_epochs=true ran one epoch)
            choices = get_args(annotation) if get_origin(annotation) is Literal else ()
            wanted = f"one of {', '.join(map(str, choices))}" if choices else "a number"
            raise ValueError(f"expected {wanted}, not the boolean {str(value).lower()}")
        if isinstance(value, int | float) and not isinstance(value, bool) and text_only(annotation):
            return str(value)  # experiment: 2024 names the experiment "2024"
        return value


@cache
def _source_models() -> frozenset[str]:
    """Model names registered in models/ (``@register("gru", ...)``), read from the source files: importing the
    registry imports torch and every model, seconds a config check should not cost."""
    spec = importlib.util.find_spec("cityagent.models")  # imports cityagent, not the models package
    folders = spec.submodule_search_locations if spec else None
    found = re.compile(r"^@register\(\s*[\"']([^\"']+)[\"']", re.MULTILINE)
    return frozenset(
        name for d in folders or () for f in Path(d).rglob("*.py") for name in found.findall(f.read_text())
    )


def model_names() -> list[str]:
    """Registered model names, without importing torch; models registered at run time count once the registry is
    loaded (it is, in any process that registered one)."""
    names = set(_source_models())
    registry = sys.modules.get("cityagent.models.registry")
    if registry is None and not names:  # no model sources to read (a zipped install): ask the registry itself
        from cityagent.models import registry
    if registry is not None:
        names |= set(registry.list_models())
    return sorted(names)


def _choice(what: str, value: Any, choices: Any) -> str:
    near = nearest(str(value), choices)
    hint = f"did you mean {near!r}? " if near else ""
    return f"unknown {what} {value!r}; {hint}choose one of {', '.join(map(str, choices))}"


def check_task_params(protocol: str, params: dict[str, Any]) -> None:
    """Raise KeyProblem for a parameter ``protocol`` does not take, or a value outside its fixed domain (scaler,
    calendar and impute choices, a window length ≥ 1); values that depend on the hub are checked when it is read."""
    from cityagent.hub.calendar import KINDS
    from cityagent.hub.protocols import protocol_params
    from cityagent.hub.scalers import SCALERS
    from cityagent.hub.tensor import IMPUTE

    valid = list(protocol_params(protocol))
    for key, value in params.items():
        if key not in valid:
            near = nearest(key, valid)
            hint = f"did you mean {near!r}? " if near else ""
            raise KeyProblem(key, f"protocol {protocol!r} has no parameter {key!r}; {hint}valid: {', '.join(valid)}")
        if key in ("input_len", "horizon") and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise KeyProblem(key, f"must be a whole number of steps ≥ 1, got {value!r}")
        if key == "scaler" and value not in SCALERS:
            raise KeyProblem(key, _choice("scaler", value, list(SCALERS)))
        if key == "impute" and value is not None and value not in IMPUTE:
            raise KeyProblem(key, _choice("imputation", value, IMPUTE) + " (or null to keep readings missing)")
        if key == "calendar" and value is not None:
            if not isinstance(value, list | tuple):  # a bare 'tod' would be read letter by letter
                raise KeyProblem(key, f"must be a list of calendar channels such as [tod, dow], got {value!r}")
            for kind in value:
                if kind not in KINDS:
                    raise KeyProblem(key, _choice("calendar channel", kind, list(KINDS)))


class TaskConfig(Strict):
    """What to learn: a domain, a dataset (or hub), a windowing protocol and its parameters."""

    domain: Domain = "traffic"
    dataset: str = Field(
        "synthetic", description="a dataset name from `cityagent.hub.importers.datasets` or 'synthetic'"
    )
    hub: str | None = Field(None, description="hub location; default $CITYAGENT_HOME/hub for 'synthetic'")
    hub_prefix: str = Field("", description="SQL hubs only: the table-name prefix the hub was written with")
    protocol: str = Field("strict", description="windowing preset: strict, tgcn, uctb, gsnet, eastnet")
    params: dict[str, Any] = Field(default_factory=dict, description="protocol parameters (input_len, horizon, ...)")

    @field_validator("protocol")
    @classmethod
    def _known_protocol(cls, protocol: str) -> str:
        from cityagent.hub.protocols import PROTOCOLS

        if protocol not in PROTOCOLS:
            raise ValueError(_choice("protocol", protocol, sorted(PROTOCOLS)))
        return protocol

    @field_validator("params")
    @classmethod
    def _known_params(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "protocol" in info.data:  # else the protocol's own error is the one to report
            check_task_params(info.data["protocol"], params)
        return params

    @field_validator("hub")
    @classmethod
    def absolute(cls, hub: str | None) -> str | None:
        """A local path made absolute (logged with the run: a relative one names another hub from elsewhere)."""
        if hub is None or "://" in hub:  # URIs and SQL URLs stay as given
            return hub
        return str(Path(hub).expanduser().resolve())


class ModelConfig(Strict):
    """Which model: a registry name, the module of your own that registers it, and its hyperparameters."""

    name: str = "gru"
    module: str | None = Field(
        None, description="a module to import first, whose @register adds model.name (a model of your own)"
    )
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _import_module(cls, data: Any) -> Any:
        module = data.get("module") if isinstance(data, dict) else None
        if isinstance(module, str) and module:  # imported before model.name is checked, in every process that reads it
            from cityagent.models.user_models import import_models

            try:
                import_models(module)
            except ConfigError as e:
                raise KeyProblem("module", str(e)) from e
        return data

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        names = model_names()
        if name not in names:  # worded as the registry words it (model_info)
            near = nearest(name, names)
            hint = f" Did you mean {near!r}?" if near else ""
            raise ValueError(
                f"unknown model {name!r}.{hint} Valid models: {', '.join(names)}. A model of your own: set "
                "model.module to the module that registers it"
            )
        return name


class TrainConfig(Strict):
    """How to learn: optimiser, loss, stopping, seed and where (Ray workers, cluster address)."""

    max_epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(2e-3, gt=0, allow_inf_nan=False)
    weight_decay: float = Field(1e-4, ge=0, allow_inf_nan=False)
    loss: Literal["mae", "mse", "huber", "risk", "quantile"] = "mae"
    quantiles: list[float] | None = None
    conformal: bool = Field(
        False,
        description="deep quantile models: calibrate the outermost levels on validation (split conformal, CQR) "
        "so the interval covers its nominal share",
    )
    patience: int = Field(5, ge=1, description="early stopping on validation loss")
    grad_clip: float = Field(5.0, ge=0, allow_inf_nan=False)
    seed: int = Field(0, ge=0, le=2**32 - 1, description="numpy takes seeds in [0, 2**32 - 1]")
    workers: int = Field(2, ge=0, description="Ray Train workers; 0 trains in-process without Ray")
    cpus_per_worker: int = Field(1, ge=1)
    address: str | None = Field(None, description="Ray cluster address; default $RAY_ADDRESS or a local Ray")
    max_failures: int = Field(2, ge=0, description="worker failures a run survives by resuming its checkpoint")
    limit_train_batches: float | int = Field(1.0, description="fraction or count of batches per epoch")
    num_threads: int | None = Field(None, ge=1, description="torch threads per worker")
    accelerator: Literal["cpu", "gpu"] = Field("cpu", description="cpu, or gpu (one GPU per Ray worker)")
    scheduler: Literal["cosine", "plateau", "none"] = Field("cosine", description="learning-rate schedule")
    refit: bool = Field(False, description="classical models: refit on training + validation after scoring it")

    @field_validator("quantiles")
    @classmethod
    def _levels(cls, quantiles: list[float] | None) -> list[float] | None:
        if not quantiles:  # [] asks for no levels, as null does
            return None
        if any(not 0 < q < 1 for q in quantiles) or any(a >= b for a, b in pairwise(quantiles)):
            raise ValueError(
                f"levels must be strictly increasing and inside (0, 1), e.g. [0.1, 0.5, 0.9]; got {quantiles}"
            )
        return quantiles

    @field_validator("limit_train_batches")
    @classmethod
    def _batches(cls, value: float | int) -> float | int:
        # Lightning reads a float as a share of the batches and an int as a count; anything else fails mid-run
        if isinstance(value, bool) or not ((isinstance(value, int) and value >= 1) or 0 < value <= 1):
            raise ValueError(f"give a share in (0, 1] (e.g. 0.25) or a number of batches >= 1 (e.g. 10); got {value}")
        return value

    @model_validator(mode="after")
    def _quantile_loss_has_levels(self) -> "TrainConfig":
        if self.loss == "quantile" and not self.quantiles:  # caught here, before any MLflow run is opened
            raise KeyProblem("quantiles", "train.loss=quantile needs the levels, e.g. train.quantiles=[0.1,0.5,0.9]")
        return self


class TrackingConfig(Strict):
    """Where runs go: MLflow experiment and tracking URI (default: sqlite under CITYAGENT_HOME)."""

    experiment: str | None = None
    tracking_uri: str | None = None
    plots: bool = True
    register_model: bool = Field(True, description="export to ONNX and register a challenger after training")


class RunConfig(Strict):
    """A whole training run."""

    task: TaskConfig = Field(default_factory=TaskConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    def flat(self) -> dict[str, Any]:
        """Dotted keys → values, as logged to MLflow params."""
        out: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict) and value:
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else k, v)
            else:
                out[prefix] = value

        walk("", self.model_dump())
        return out


def _explain(e: ValidationError) -> ConfigError:
    err = e.errors()[0]
    path = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return ConfigError(f"config key {path!r} does not exist; {key_hint(path, RunConfig)}")
    if err["type"] == "value_error":  # our validators' sentences name the value and the fix themselves
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, KeyProblem):
            path = f"{path}.{cause.key}" if path else cause.key
        return ConfigError(f"config key {path!r}: {cause if cause is not None else err['msg']}")
    return ConfigError(f"config key {path!r}: {err['msg']} (got {err.get('input')!r})")


def _annotation(dotted: str) -> Any:
    """The type of the config field at ``dotted`` (``tracking.experiment`` → ``str | None``); None if no field."""
    model: Any = RunConfig
    annotation = None
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return None
        annotation = model = fields[part].annotation
    return annotation


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {p!r} is not a section")
    node[leaf] = value


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml_tree(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML config with its ``defaults:`` (paths relative to the file) merged underneath, in order."""
    p = Path(path).resolve()
    if not p.is_file():
        raise ConfigError(f"config file {path} does not exist; see configs/ for examples")
    if p in _seen:
        raise ConfigError(f"config file {p} includes itself through defaults")
    tree = read_yaml(p) or {}
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {p} must hold a mapping with task/model/train/tracking sections")
    merged: dict[str, Any] = {}
    for inc in tree.pop("defaults", None) or []:
        merged = _deep_merge(merged, read_yaml_tree(p.parent / inc, (*_seen, p)))
    return _deep_merge(merged, tree)


def load_config(
    path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None, **sections: Any
) -> RunConfig:
    """Read a YAML config, apply overrides, and validate.

    Args:
        path: a YAML file (see configs/), whose ``defaults:`` list names files merged underneath it;
            None starts from the built-in defaults.
        overrides: ``["model.name=tgcn", "train.max_epochs=3"]`` (values parsed as YAML) or a dotted-key dict.
        sections: whole sections as dicts, e.g. ``task={"domain": "risk"}``.
    """
    tree: dict[str, Any] = read_yaml_tree(path) if path is not None else {}
    for name, value in sections.items():
        tree.setdefault(name, {}).update(value)
    items = overrides.items() if isinstance(overrides, dict) else [_split(o) for o in overrides or []]
    for key, value in items:
        _set(tree, key, value)
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as e:
        raise _explain(e) from e


def _split(item: str) -> tuple[str, Any]:
    """``key=value`` with the value parsed as YAML, except where the key is a text field: there the text typed is
    the value (``tracking.experiment=2024`` or ``=yes`` name an experiment, not a number or a boolean)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value, e.g. train.max_epochs=3")
    key, raw = (part.strip() for part in item.split("=", 1))
    try:
        value = parse_yaml(raw)
    except yaml.YAMLError as e:
        raise ConfigError(
            f"override {item!r}: the value is not valid YAML ({yaml_problem(e)}); quote it, or close its brackets, "
            "e.g. 'train.quantiles=[0.1,0.5,0.9]'"
        ) from e
    if isinstance(value, bool | int | float) and text_only(_annotation(key)):
        return key, raw
    return key, value
