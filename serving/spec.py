"""Model specs: how a served model is named in the config or on the command line."""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cityagent.errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    """One configured model.

    Args:
        kind: 'registry' or 'local'.
        name: the model's name on the wire (the registered model name, or the local file's).
        ref: registry alias ('champion') or version ('3'); for a local model, the file path.
        by_alias: True when `ref` is a registry alias (polled for moves).
    """

    kind: Literal["registry", "local"]
    name: str
    ref: str
    by_alias: bool = False

    def __str__(self) -> str:
        if self.kind == "local":
            return f"{self.name}={self.ref}"
        return f"models:/{self.name}{'@' if self.by_alias else '/'}{self.ref}"


def parse_spec(text: str) -> ModelSpec:
    """'name@alias', 'models:/name@alias', 'models:/name/3', 'path/model.onnx' or 'name=path/model.onnx'."""
    text = text.strip()
    if text.startswith("models:/"):
        body = text.removeprefix("models:/")
        if "@" in body:
            name, alias = body.split("@", 1)
            return _registry(text, name, alias, by_alias=True)
        name, _, version = body.partition("/")
        if not version.isdigit():
            raise ConfigError(
                f"model spec {text!r} needs a version number or an alias: models:/<name>/<n> or @<alias>."
            )
        return _registry(text, name, version, by_alias=False)
    if "=" in text:
        name, path = text.split("=", 1)
        return _local(text, Path(path), name)
    if text.endswith(".onnx") or Path(text).is_file():
        return _local(text, Path(text), Path(text).stem)
    if "@" in text:
        name, alias = text.split("@", 1)
        return _registry(text, name, alias, by_alias=True)
    raise ConfigError(f"model spec {text!r} is neither 'name@alias', 'models:/name/<n>' nor an .onnx path; fix it.")


def _registry(text: str, name: str, ref: str, by_alias: bool) -> ModelSpec:
    if not name or not ref:
        raise ConfigError(
            f"model spec {text!r} lacks a name or an alias/version; write e.g. 'traffic-synthetic@champion'."
        )
    return ModelSpec("registry", name, ref, by_alias)


def _local(text: str, path: Path, name: str) -> ModelSpec:
    if not name:
        raise ConfigError(f"model spec {text!r} has an empty name before '='; write 'name=path/model.onnx'.")
    if not path.is_file():
        raise ConfigError(f"model file {path} (from spec {text!r}) does not exist; export the model or fix the path.")
    return ModelSpec("local", name, str(path.resolve()))
