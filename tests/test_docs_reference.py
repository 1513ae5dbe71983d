"""The configuration reference documents every config key and no other, and relative links in docs/ resolve."""

import importlib
import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from cityagent.hub.protocols import PROTOCOLS, protocol_params
from cityagent.models.registry import list_models, model_info
from tests.doc_blocks import DOCS, PAGES


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        ann = field.annotation
        nested = [a for a in (ann, *typing.get_args(ann)) if isinstance(a, type) and issubclass(a, BaseModel)]
        keys |= _leaf_keys(nested[0], f"{prefix}{name}.") if nested else {f"{prefix}{name}"}
    return keys


def _scopes(text: str) -> dict[str, set[str]]:
    """{'config: module:Class' | 'protocol: name' | 'model: name': keys in the first column of its tables}."""
    scopes: dict[str, set[str]] = {}
    config = detail = None
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if fenced:
            continue
        if line.startswith("#"):
            detail = None
            if line.startswith("## "):
                config = None
        if m := re.match(r"<!--\s*(config|protocol|model):\s*(\S+)\s*-->", line):
            key = f"{m.group(1)}: {m.group(2)}"
            scopes.setdefault(key, set())
            config, detail = (key, None) if m.group(1) == "config" else (config, key)
        elif m := re.match(r"\|\s*`([^`]+)`\s*\|", line):
            scope = detail or config
            if scope:
                scopes[scope].add(m.group(1))
    return scopes


def _load(spec: str) -> type[BaseModel]:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


CONFIG_CLASSES = [
    "cityagent.training.config:RunConfig",
    "cityagent.serving.config:ServingConfig",
    "cityagent.agent.agent_config:AgentConfig",
    "cityagent.training.gate:GateConfig",
]


def test_configuration_reference_documents_every_key_and_no_other():
    scopes = _scopes((DOCS / "configuration.md").read_text())
    for spec in CONFIG_CLASSES:
        documented, actual = scopes.get(f"config: {spec}"), _leaf_keys(_load(spec))
        assert documented is not None, f"docs/configuration.md has no section marked <!-- config: {spec} -->"
        missing, unknown = sorted(actual - documented), sorted(documented - actual)
        assert not missing, f"{spec}: keys missing from docs/configuration.md: {missing}"
        assert not unknown, f"{spec}: documented keys that do not exist: {unknown}"
    for name in PROTOCOLS:
        documented, actual = scopes.get(f"protocol: {name}"), set(protocol_params(name))
        assert documented == actual, f"protocol {name}: documented {sorted(documented or [])}, real {sorted(actual)}"
    for name in list_models():
        documented, actual = scopes.get(f"model: {name}"), set(model_info(name).params)
        assert documented == actual, f"model {name}: documented {sorted(documented or [])}, real {sorted(actual)}"
    extra = {k for k in scopes if k.split(": ")[0] in ("protocol", "model")} - {
        *(f"protocol: {p}" for p in PROTOCOLS),
        *(f"model: {m}" for m in list_models()),
    }
    assert not extra, f"docs/configuration.md documents protocols or models that do not exist: {sorted(extra)}"


def test_reference_check_catches_a_missing_and_an_unknown_key():
    page = "## Gate\n<!-- config: cityagent.training.gate:GateConfig -->\n| `primary_metric` | x |\n| `nope` | y |\n"
    documented = _scopes(page)["config: cityagent.training.gate:GateConfig"]
    actual = _leaf_keys(_load("cityagent.training.gate:GateConfig"))
    assert documented - actual == {"nope"} and "max_size_mb" in actual - documented
    assert {"train.max_epochs", "tracking.tracking_uri", "task.params"} <= _leaf_keys(
        _load("cityagent.training.config:RunConfig")
    )


LINK = re.compile(r"\[[^\]]+\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_relative_links_point_at_files_and_headings(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for target in LINK.findall(text):
        if "://" in target or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"docs/{page.name}: link {target} points at a missing file"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"docs/{page.name}: link {target} names no heading of {dest.name}"


def test_slug_matches_github():
    assert _slug("6 · Ask for a forecast") == "6--ask-for-a-forecast"
    assert _slug("Scheduled retraining: `cityagent retrain`") == "scheduled-retraining-cityagent-retrain"
    assert _slug("A team's MLflow: PostgreSQL and object storage") == "a-teams-mlflow-postgresql-and-object-storage"
