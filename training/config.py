"""Typed training configs: YAML in configs/ → ``RunConfig``, with ``key=value`` overrides.

Unknown keys are rejected with their dotted path and the nearest valid key, so YAML never drifts from code.
"""

from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from cityagent.config_errors import key_hint
from cityagent.errors import ConfigError

Domain = Literal["traffic", "demand", "risk"]


def _admits_bool(annotation: Any) -> bool:
    return annotation is bool or annotation is Any or any(_admits_bool(a) for a in get_args(annotation))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic takes YAML's true/false as 1/0 where a number belongs (train.max_epochs=true ran one epoch)
        if isinstance(value, bool) and not _admits_bool(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"expected a number or text, not the boolean {str(value).lower()}")
        return value


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

    @field_validator("hub")
    @classmethod
    def absolute(cls, hub: str | None) -> str | None:
        """A local path made absolute (logged with the run: a relative one names another hub from elsewhere)."""
        if hub is None or "://" in hub:  # URIs and SQL URLs stay as given
            return hub
        return str(Path(hub).expanduser().resolve())


class ModelConfig(Strict):
    """Which model: a registry name and its hyperparameters."""

    name: str = "gru"
    params: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(Strict):
    """How to learn: optimiser, loss, stopping, seed and where (Ray workers, cluster address)."""

    max_epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    loss: Literal["mae", "mse", "huber", "risk", "quantile"] = "mae"
    quantiles: list[float] | None = None
    conformal: bool = Field(
        False,
        description="deep quantile models: calibrate the outermost levels on validation (split conformal, CQR) "
        "so the interval covers its nominal share",
    )
    patience: int = Field(5, ge=1, description="early stopping on validation loss")
    grad_clip: float = Field(5.0, ge=0)
    seed: int = 0
    workers: int = Field(2, ge=0, description="Ray Train workers; 0 trains in-process without Ray")
    cpus_per_worker: int = Field(1, ge=1)
    address: str | None = Field(None, description="Ray cluster address; default $RAY_ADDRESS or a local Ray")
    max_failures: int = Field(2, ge=0, description="worker failures a run survives by resuming its checkpoint")
    limit_train_batches: float | int = Field(1.0, description="fraction or count of batches per epoch")
    num_threads: int | None = Field(None, description="torch threads per worker")
    accelerator: Literal["cpu", "gpu"] = Field("cpu", description="cpu, or gpu (one GPU per Ray worker)")
    scheduler: Literal["cosine", "plateau", "none"] = Field("cosine", description="learning-rate schedule")
    refit: bool = Field(False, description="classical models: refit on training + validation after scoring it")


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
    return ConfigError(f"config key {path!r}: {err['msg']} (got {err.get('input')!r})")


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
    try:
        tree = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {e}") from e
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
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value, e.g. train.max_epochs=3")
    key, raw = item.split("=", 1)
    return key.strip(), yaml.safe_load(raw)
