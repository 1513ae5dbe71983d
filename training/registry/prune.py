"""Pruning a model's old versions: a daily retrain registers a version a day, and each keeps its run's files.

Kept: the newest ``keep`` versions, every version an alias points at, and the newest ``keep`` versions of each alias's
history, which are what ``rollback`` can go back to. Every other version is deleted from the registry, and so are the
run it came from and that run's logged models, unless a version that stays (of any model) still uses them. The history
of moves is never touched: it is the record of what was served and why.

MLflow only marks runs and logged models deleted. On a database store (the default sqlite file, or a team's database
named by ``MLFLOW_TRACKING_URI``) ``prune_versions`` then removes them for good, files included, as ``mlflow gc`` would;
a tracking server's operators run ``mlflow gc`` on the server, which needs the database. Runs are marked deleted before
their versions go, so a prune cut short is finished by the next one.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from cityagent.errors import CityAgentError, ConfigError
from cityagent.training.registry.history import alias_stack, moves_and_unrecorded
from cityagent.training.registry.store import (
    get_client,
    get_registered_model,
    is_not_found,
    list_model_versions,
    resolve_tracking_uri,
    search_versions,
)


@dataclass
class PruneReport:
    """What a prune deleted (or, with ``dry_run``, would delete)."""

    name: str
    kept: list[str] = field(default_factory=list)  # versions that stay, newest first
    pruned: list[str] = field(default_factory=list)  # versions deleted, newest first
    runs: list[str] = field(default_factory=list)  # their runs, marked deleted (and removed when ``collected``)
    logged_models: list[str] = field(default_factory=list)  # their logged models (the ONNX files)
    collected: bool = False  # removed for good, files included (a database store)
    dry_run: bool = False


def kept_versions(client: MlflowClient, name: str, keep: int) -> set[str]:
    """The versions of ``name`` a prune keeps: the newest ``keep``, the aliased ones, the newest ``keep`` of each
    alias's history (rollback targets)."""
    model = get_registered_model(client, name)
    versions = [str(v.version) for v in list_model_versions(client, name)]
    kept = set(versions[-keep:]) | {str(v) for v in model.aliases.values()}
    moves = moves_and_unrecorded(client, name)
    for alias in {m.alias for m in moves}:
        kept |= set(alias_stack(moves, alias)[-keep:])
    return kept & set(versions)


def prune_versions(name: str, *, keep: int, dry_run: bool = False, tracking_uri: str | None = None) -> PruneReport:
    """Delete the versions of ``name`` that a rollback cannot reach and that are not among the newest ``keep``.

    Args:
        name: registered model name.
        keep: how many newest versions (and newest entries of each alias's history) stay; at least 1.
        dry_run: say what would go; delete nothing.
        tracking_uri: MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite under CITYAGENT_HOME).

    Raises:
        ConfigError: ``keep`` below 1.
        CityAgentError: an unknown model (the known ones are listed), or removing the files failed.
    """
    if keep < 1:
        raise ConfigError(f"keep {keep}: keep at least 1 version (the champion and its rollback targets always stay)")
    client = get_client(tracking_uri)
    kept = kept_versions(client, name, keep)
    versions = list_model_versions(client, name)
    doomed = [v for v in reversed(versions) if str(v.version) not in kept]
    report = PruneReport(name, sorted(kept, key=int, reverse=True), [str(v.version) for v in doomed], dry_run=dry_run)
    gone = {(name, str(v.version)) for v in doomed}
    report.runs = sorted({v.run_id for v in doomed if v.run_id and not _still_used(client, "run_id", v.run_id, gone)})
    # a run's logged models (its ONNX exports) go with it: a version that stays uses its own run's
    report.logged_models = sorted({m for r in report.runs for m in _logged_models_of(client, r)})
    if dry_run or not doomed:
        return report
    for run_id in report.runs:  # first: a prune cut short leaves versions the next one finds and finishes
        _quietly(lambda r=run_id: client.delete_run(r))
    for model_id in report.logged_models:
        _quietly(lambda m=model_id: client.delete_logged_model(m))
    for v in doomed:
        _quietly(lambda v=v: client.delete_model_version(name, str(v.version)))
    uri = resolve_tracking_uri(tracking_uri)
    if _is_database(uri) and (report.runs or report.logged_models):
        _collect(uri, report.runs, report.logged_models)
        report.collected = True
    return report


def _still_used(client: MlflowClient, key: str, value: str, gone: set[tuple[str, str]]) -> bool:
    """Whether a version that stays (of any registered model) comes from this run."""
    return any((v.name, str(v.version)) not in gone for v in search_versions(client, f"{key} = '{value}'"))


def _logged_models_of(client: MlflowClient, run_id: str) -> list[str]:
    """Every logged model a run made (a run exported twice has two), so deleting the run leaves none behind."""
    try:
        run = client.get_run(run_id)
    except MlflowException as e:
        if is_not_found(e):
            return []
        raise
    found = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'", max_results=1000
    )
    return [m.model_id for m in found]


def _quietly(delete: Callable[[], object]) -> None:
    """Run a delete; one already done (a prune cut short, a person in MLflow's UI) is not an error."""
    try:
        delete()
    except MlflowException as e:
        if not is_not_found(e):
            raise


def _is_database(uri: str) -> bool:
    """A store ``mlflow gc`` can open itself: a SQLAlchemy URL, not a tracking server or a file store."""
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
    return scheme in ("sqlite", "postgresql", "mysql", "mssql")


def _collect(uri: str, runs: list[str], logged_models: list[str]) -> None:
    """Remove exactly these deleted runs and logged models for good, rows and files, as ``mlflow gc`` does.

    Not ``mlflow gc`` itself: given run ids but no experiment ids, it also removes every experiment someone marked
    deleted (and its runs), and given only logged-model ids, every deleted run. MLflow's store methods it uses are
    private; the pinned version is checked by tests/training/test_prune.py.
    """
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.tracking import _get_store

    store = _get_store(uri)
    try:
        for run_id in runs:
            run = store.get_run(run_id)
            if run.info.lifecycle_stage == "deleted":  # restored meanwhile (MLflow's UI): it stays
                get_artifact_repository(run.info.artifact_uri).delete_artifacts()
                _drop_empty_folders(run.info.artifact_uri)
                store._hard_delete_run(run_id)
        deleted = set(store._get_deleted_logged_models())
        ours = set(runs)  # and those a prune cut short had marked deleted: a search no longer finds them
        late = [
            m
            for m in deleted - set(logged_models)
            if store.get_logged_model(m, allow_deleted=True).source_run_id in ours
        ]
        for model_id in [*logged_models, *late]:
            model = store.get_logged_model(model_id, allow_deleted=True)
            if model_id in deleted:
                get_artifact_repository(model.artifact_location).delete_artifacts()
                _drop_empty_folders(model.artifact_location)
                store._hard_delete_logged_model(model_id)
    except (MlflowException, OSError) as e:
        raise CityAgentError(
            f"removing the pruned runs' files failed ({e}); they are marked deleted and their files stay: "
            f"`mlflow gc --backend-store-uri {uri} --run-ids ...` removes them once the cause is fixed"
        ) from e


def _drop_empty_folders(uri: str) -> None:
    """MLflow deletes ``<run>/artifacts`` (``models/<id>/artifacts``) and leaves the folder above it, empty."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        return
    folder = Path(url2pathname(parsed.path) if parsed.scheme else uri)
    for path in (folder, folder.parent):
        try:
            path.rmdir()  # only an empty folder: anything else in it stays
        except FileNotFoundError:
            continue  # MLflow removed this one itself
        except OSError:
            return
