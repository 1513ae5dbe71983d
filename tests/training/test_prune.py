"""Pruning old model versions on a real MLflow store: what rollback can reach stays, the rest goes with its runs,
logged models and files; a dry run and a failed prune change nothing that the next prune cannot finish."""

from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from typer import Typer
from typer.testing import CliRunner

from cityagent.agent.cli_models import models_app
from cityagent.errors import CityAgentError, ConfigError
from cityagent.training.export import export_run
from cityagent.training.registry import history, list_versions, promote, rollback
from cityagent.training.registry.prune import kept_versions, prune_versions
from tests.mlflow_servers import mlflow_server
from tests.training.export_factories import log_training_run, sqlite_store, tiny_bundle


@pytest.fixture
def store(tmp_path):
    with sqlite_store(tmp_path) as s:
        yield s


def exported(store, name: str, n: int, run_id: str | None = None) -> list[tuple[str, str]]:
    """``n`` real versions of ``name`` (a tiny GRU as ONNX), each from its own training run unless ``run_id``."""
    out = []
    for _ in range(n):
        run = run_id or log_training_run(store.client, store.experiment_id, tiny_bundle("gru", task=name), store.root)
        out.append((export_run(run, tracking_uri=store.uri, alias=None).version, run))
    return out


def files_of(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in (root / "artifacts").rglob("*") if p.is_file()}


def gone(fn) -> bool:
    try:
        fn()
    except MlflowException as e:
        return e.error_code == "RESOURCE_DOES_NOT_EXIST"
    return False


def test_what_rollback_can_reach_stays_and_the_rest_goes_with_its_runs_and_files(store):
    made = exported(store, "p", 7)
    v = [version for version, _ in made]
    promote("p", v[0], reason="first", tracking_uri=store.uri)
    promote("p", v[2], reason="second", tracking_uri=store.uri)
    promote("p", v[3], reason="third", tracking_uri=store.uri)
    promote("p", v[5], alias="challenger", reason="to watch", tracking_uri=store.uri)
    moves = len(history("p", tracking_uri=store.uri))
    before = files_of(store.root)

    # newest 2 (v6, v7), aliased (v4 champion, v6 challenger), champion's newest 2 (v3, v4)
    assert kept_versions(store.client, "p", 2) == {v[2], v[3], v[5], v[6]}
    report = prune_versions("p", keep=2, tracking_uri=store.uri)

    assert report.pruned == [v[4], v[1], v[0]] and report.kept == [v[6], v[5], v[3], v[2]] and report.collected
    pruned_runs = {made[i][1] for i in (0, 1, 4)}
    assert set(report.runs) == pruned_runs and len(report.logged_models) == 3
    assert [r.version for r in list_versions("p", tracking_uri=store.uri)] == [v[2], v[3], v[5], v[6]]
    for run_id in pruned_runs:  # removed for good, not only marked deleted
        assert gone(lambda r=run_id: store.client.get_run(r))
        assert not (store.root / "artifacts" / run_id).exists()
    for model_id in report.logged_models:
        assert gone(lambda m=model_id: store.client.get_logged_model(m))
        assert not (store.root / "artifacts" / "models" / model_id).exists()
    left = files_of(store.root)
    assert left < before and all(any(made[i][1] in f for i in (2, 3, 5, 6)) or "models/" in f for f in left)
    assert len(history("p", tracking_uri=store.uri)) == moves  # the record of what was served stays whole

    assert prune_versions("p", keep=2, tracking_uri=store.uri).pruned == []  # the same rule: nothing more goes
    back = rollback("p", reason="v4 drifts", tracking_uri=store.uri)  # the stack's next entry was kept
    assert (back.from_version, back.to_version) == (v[3], v[2])
    # rolled back from, v4 is neither aliased, newest, nor where a rollback leads: the next prune takes it
    assert prune_versions("p", keep=2, tracking_uri=store.uri).pruned == [v[3]]


def test_a_dry_run_says_what_would_go_and_deletes_nothing(store):
    exported(store, "d", 3)
    before = (files_of(store.root), [r.version for r in list_versions("d", tracking_uri=store.uri)])
    report = prune_versions("d", keep=1, dry_run=True, tracking_uri=store.uri)
    assert report.pruned == ["2", "1"] and report.dry_run and not report.collected
    assert (files_of(store.root), [r.version for r in list_versions("d", tracking_uri=store.uri)]) == before


def test_a_run_a_kept_version_still_uses_stays(store):
    [(old, run)] = exported(store, "s", 1)
    source = store.client.get_model_version("s", old).source
    new = store.client.create_model_version("s", source=source, run_id=run).version  # registered again by hand
    report = prune_versions("s", keep=1, tracking_uri=store.uri)
    assert report.pruned == [old] and report.runs == [] and report.logged_models == []
    assert store.client.get_run(run).info.lifecycle_stage == "active"
    assert [r.version for r in list_versions("s", tracking_uri=store.uri)] == [str(new)]


def test_a_prune_cut_short_is_finished_by_the_next(store, monkeypatch):
    exported(store, "c", 3)
    real = store.client.__class__.delete_model_version

    def fails(self, name, version):
        raise MlflowException("the database went away", error_code="INTERNAL_ERROR")

    monkeypatch.setattr(store.client.__class__, "delete_model_version", fails)
    with pytest.raises(MlflowException, match="went away"):
        prune_versions("c", keep=1, tracking_uri=store.uri)
    monkeypatch.setattr(store.client.__class__, "delete_model_version", real)
    assert len(list_versions("c", tracking_uri=store.uri)) == 3  # the runs are marked deleted, the versions remain

    report = prune_versions("c", keep=1, tracking_uri=store.uri)
    assert report.pruned == ["2", "1"] and report.collected and len(report.runs) == 2
    assert [r.version for r in list_versions("c", tracking_uri=store.uri)] == ["3"]
    assert all(gone(lambda r=r: store.client.get_run(r)) for r in report.runs)
    assert len(list((store.root / "artifacts" / "models").iterdir())) == 1  # the first prune's marked ones too


def test_a_deleted_experiment_of_someone_elses_is_left_alone(store):
    """`mlflow gc --run-ids` would remove every experiment marked deleted as well; prune removes only its own."""
    other = store.client.create_experiment("someone's", artifact_location=str(store.root / "theirs"))
    their_run = store.client.create_run(other).info.run_id
    store.client.delete_experiment(other)
    exported(store, "e", 2)
    assert prune_versions("e", keep=1, tracking_uri=store.uri).collected
    assert store.client.get_experiment(other).lifecycle_stage == "deleted"  # still there, still restorable
    assert store.client.get_run(their_run).info.lifecycle_stage == "deleted"


def test_bad_requests_are_refused_before_anything_is_deleted(store):
    exported(store, "b", 2)
    with pytest.raises(ConfigError, match="keep at least 1 version"):
        prune_versions("b", keep=0, tracking_uri=store.uri)
    with pytest.raises(CityAgentError, match=r"no registered model 'nope'.*known models: b"):
        prune_versions("nope", keep=1, tracking_uri=store.uri)
    assert len(list_versions("b", tracking_uri=store.uri)) == 2


def models_cli(*args: str):
    app = Typer()
    app.add_typer(models_app, name="models")
    return CliRunner().invoke(app, ["models", *args], env={"COLUMNS": "200"})


def test_the_cli_prunes_and_says_what_went(store):
    exported(store, "cli", 3)
    dry = models_cli("prune", "cli", "--keep", "1", "--dry-run", "--tracking-uri", store.uri)
    assert dry.exit_code == 0 and "cli: would delete 2 version(s) (2, 1), 2 run(s)" in dry.output, dry.output
    done = models_cli("prune", "cli", "--keep", "1", "--tracking-uri", store.uri)
    assert done.exit_code == 0 and "deleted 2 version(s) (2, 1)" in done.output and "1 stay (3)" in done.output
    again = models_cli("prune", "cli", "--keep", "1", "--tracking-uri", store.uri)
    assert again.exit_code == 0 and "nothing to prune; all 1 version(s) stay" in again.output
    bad = models_cli("prune", "cli", "--keep", "0", "--tracking-uri", store.uri)
    assert bad.exit_code == 2 and "keep at least 1 version" in bad.output


def test_on_a_tracking_server_runs_are_marked_deleted_and_gc_is_left_to_its_operators(tmp_path):
    with mlflow_server(tmp_path) as url:
        client = __import__("mlflow").MlflowClient(tracking_uri=url)
        client.create_registered_model("srv")
        exp = client.create_experiment("srv")
        runs = []
        for _ in range(2):
            runs.append(client.create_run(exp).info.run_id)
            client.create_model_version("srv", source=f"runs:/{runs[-1]}/model", run_id=runs[-1])
        result = models_cli("prune", "srv", "--keep", "1", "--tracking-uri", url)
        assert result.exit_code == 0, result.output
        assert "until `mlflow gc` runs there" in result.output
        assert client.get_run(runs[0]).info.lifecycle_stage == "deleted"  # marked, not removed: the server's gc
        assert client.get_run(runs[1]).info.lifecycle_stage == "active"
        assert [str(v.version) for v in client.search_model_versions("name = 'srv'")] == ["2"]
