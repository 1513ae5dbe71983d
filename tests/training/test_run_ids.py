"""Run ids as `cityagent models list` shows them (8 characters) name a run everywhere a RUN_ID is taken, like git."""

import uuid

import pytest
import yaml
from mlflow.store.tracking import sqlalchemy_store

from cityagent.errors import CityAgentError
from cityagent.training.config import load_config
from cityagent.training.evaluate import load_run
from cityagent.training.run_ids import resolve_run_id
from tests.training.export_factories import log_training_run, sqlite_store, tiny_bundle


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with sqlite_store(tmp_path_factory.mktemp("mlflow")) as s:
        yield s


def runs_with_ids(store, monkeypatch, *ids: str) -> list[str]:
    """Runs whose ids are exactly ``ids`` (MLflow draws them from uuid4, patched here for the creations only)."""
    with monkeypatch.context() as mp:
        fixed = iter(uuid.UUID(i) for i in ids)
        mp.setattr(sqlalchemy_store.uuid, "uuid4", lambda: next(fixed))
        return [store.client.create_run(store.experiment_id).info.run_id for _ in ids]


def test_a_full_id_or_a_unique_prefix_names_the_run(store):
    run_id = store.client.create_run(store.experiment_id).info.run_id
    assert resolve_run_id(store.client, run_id) == run_id  # the fast path
    assert resolve_run_id(store.client, run_id[:8]) == run_id  # what `cityagent models list` shows
    assert resolve_run_id(store.client, run_id[:6].upper()) == run_id
    assert resolve_run_id(store.client, f" {run_id[:12]}\n") == run_id


def test_runs_of_other_experiments_and_deleted_runs_are_found(store):
    other = store.client.create_experiment("elsewhere", artifact_location=str(store.root / "elsewhere"))
    run_id = store.client.create_run(other).info.run_id
    store.client.delete_run(run_id)
    assert resolve_run_id(store.client, run_id[:8]) == run_id


def test_an_ambiguous_prefix_is_refused_naming_every_match(store, monkeypatch):
    a, b = runs_with_ids(store, monkeypatch, "9e3e0bdc" + "0" * 24, "9e3e0bdc" + "f" * 24)
    with pytest.raises(CityAgentError, match=rf"'9e3e0bdc' is ambiguous: it matches {a}, {b}; give more characters"):
        resolve_run_id(store.client, "9e3e0bdc")
    assert resolve_run_id(store.client, "9e3e0bdc0") == a


def test_an_unknown_or_too_short_id_says_how_to_list_runs(store):
    with pytest.raises(CityAgentError, match=r"no run id starts with 'abcdef12' at sqlite.*cityagent models list"):
        resolve_run_id(store.client, "abcdef12")
    with pytest.raises(CityAgentError, match=r"no run '0123456789abcdef0123456789abcdef' at .*mlflow runs list"):
        resolve_run_id(store.client, "0123456789abcdef0123456789abcdef")
    with pytest.raises(CityAgentError, match=r"no run 'not-a-run' at "):
        resolve_run_id(store.client, "not-a-run")
    with pytest.raises(CityAgentError, match=r"prefix '9e3e0' is too short; give at least 6 characters"):
        resolve_run_id(store.client, "9e3e0")


def test_load_run_takes_a_prefix(store, tmp_path):
    run_id = log_training_run(store.client, store.experiment_id, tiny_bundle("gru"), tmp_path)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(load_config(None, {}).model_dump(), sort_keys=False))
    store.client.log_artifact(run_id, str(cfg))
    bundle, _, folder = load_run(run_id[:8], store.uri, tmp_path / "dst")
    assert bundle.meta["run_id"] == run_id and folder.is_dir()
