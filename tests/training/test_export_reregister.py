"""Exporting a run that is already registered (as `cityagent train` registers it) adds no second version of the
same file: export answers with the existing version, and the CLI says "already registered as NAME vN". Only an
ONNX file that really differs (made by another cityagent or torch version) becomes a new version."""

import pytest
from typer.testing import CliRunner

import cityagent
from cityagent.agent.cli import app
from cityagent.downloads import PROGRESS_VAR
from cityagent.training.export import DIGEST_TAG, export_run
from cityagent.training.registry import history
from tests.training.export_factories import log_training_run, sqlite_store, tiny_bundle


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with sqlite_store(tmp_path_factory.mktemp("mlflow")) as s:
        yield s


def _state(store, task: str) -> tuple[list[str], int, list]:
    versions = sorted(str(mv.version) for mv in store.client.search_model_versions(f"name = '{task}'"))
    logged = len(store.client.search_logged_models([store.experiment_id]))
    return versions, logged, history(task, tracking_uri=store.uri)


def test_a_second_export_of_a_registered_run_answers_with_its_version(store, monkeypatch, capfd):
    run_id = log_training_run(store.client, store.experiment_id, tiny_bundle("gru", task="traffic-again"), store.root)
    first = export_run(run_id, tracking_uri=store.uri, actor="train")  # what `cityagent train` does at its end
    assert (first.version, first.already_registered, first.name) == ("1", False, "traffic-again")
    before = _state(store, "traffic-again")

    monkeypatch.delenv(PROGRESS_VAR, raising=False)  # a notebook: MLflow would draw a bar per download
    capfd.readouterr()
    again = export_run(run_id[:8], tracking_uri=store.uri, actor="ops")  # downloads the bundle and the stored file
    assert "Downloading artifacts" not in capfd.readouterr().err
    assert (again.version, again.model_uri, again.already_registered) == ("1", "models:/traffic-again/1", True)
    assert again.onnx_path.read_bytes() == first.onnx_path.read_bytes()
    assert _state(store, "traffic-again") == before  # no v2, no second logged model, no history move
    assert str(store.client.get_model_version_by_alias("traffic-again", "challenger").version) == "1"


def test_a_version_registered_before_the_digest_tag_is_recognised_by_its_file(store):
    run_id = log_training_run(store.client, store.experiment_id, tiny_bundle("tgcn", task="traffic-old"), store.root)
    export_run(run_id, tracking_uri=store.uri)
    store.client.delete_model_version_tag("traffic-old", "1", DIGEST_TAG)  # as an older cityagent registered it
    again = export_run(run_id, tracking_uri=store.uri)
    assert (again.version, again.already_registered) == ("1", True)
    assert _state(store, "traffic-old")[0] == ["1"]


def test_an_export_whose_file_differs_is_a_new_version_that_says_why(store, monkeypatch):
    run_id = log_training_run(store.client, store.experiment_id, tiny_bundle("gru", task="traffic-newer"), store.root)
    export_run(run_id, tracking_uri=store.uri)
    monkeypatch.setattr(cityagent, "__version__", "99.0.0")  # travels in the ONNX metadata: another file
    newer = export_run(run_id, tracking_uri=store.uri, actor="ops")
    assert (newer.version, newer.already_registered, newer.differs_from) == ("2", False, ("1",))
    assert str(store.client.get_model_version_by_alias("traffic-newer", "challenger").version) == "2"


def test_the_alias_is_moved_back_to_the_existing_version_when_asked(store):
    task = "traffic-moved"
    run_a = log_training_run(store.client, store.experiment_id, tiny_bundle("gru", task=task), store.root)
    run_b = log_training_run(store.client, store.experiment_id, tiny_bundle("tgcn", task=task), store.root)
    export_run(run_a, tracking_uri=store.uri)
    export_run(run_b, tracking_uri=store.uri)  # v2 is now the challenger
    again = export_run(run_a, tracking_uri=store.uri, actor="ops")
    assert (again.version, again.already_registered) == ("1", True)
    assert str(store.client.get_model_version_by_alias(task, "challenger").version) == "1"
    assert [(m.from_version, m.to_version) for m in history(task, tracking_uri=store.uri)][-1] == ("2", "1")
    assert _state(store, task)[0] == ["1", "2"]


def test_the_cli_says_already_registered(store):
    run_id = log_training_run(store.client, store.experiment_id, tiny_bundle("gru", task="traffic-cli"), store.root)
    first = CliRunner().invoke(app, ["export", run_id, "--tracking-uri", store.uri])
    assert first.exit_code == 0, first.output
    assert "exported models:/traffic-cli/1" in " ".join(first.output.split())
    again = CliRunner().invoke(app, ["export", run_id, "--tracking-uri", store.uri])
    assert again.exit_code == 0, again.output
    assert "already registered as traffic-cli v1" in " ".join(again.output.split())
    assert "traffic-cli @challenger → v1" in again.output  # the alias move is said, not only recorded
    assert _state(store, "traffic-cli")[0] == ["1"]


def _logged(store) -> int:
    return len(store.client.search_logged_models([store.experiment_id]))


def test_export_no_register_run_again_logs_no_second_model(store, monkeypatch):
    run_id = log_training_run(store.client, store.experiment_id, tiny_bundle("gru", task="traffic-unreg"), store.root)
    first = export_run(run_id, tracking_uri=store.uri, register=False)
    assert first.version is None and not first.already_logged and first.model_uri.startswith("models:/m-")
    logged = _logged(store)

    args = ["export", run_id, "--no-register", "--tracking-uri", store.uri]
    again = CliRunner().invoke(app, args, terminal_width=300)
    assert again.exit_code == 0, again.output
    assert f"already logged as {first.model_uri} (the same ONNX file" in " ".join(again.output.split())
    assert _logged(store) == logged  # no second logged model of the same file in the run

    monkeypatch.setattr(cityagent, "__version__", "99.0.0")  # another file: logged beside the first
    newer = export_run(run_id, tracking_uri=store.uri, register=False)
    assert not newer.already_logged and newer.model_uri != first.model_uri
    assert _logged(store) == logged + 1
    assert not store.client.search_model_versions("name = 'traffic-unreg'")  # and still nothing registered
