"""Where the registry lives and how to look things up in it, with errors that say what to do.

The default store is the sqlite file ``$CITYAGENT_HOME/mlflow.db``; ``MLFLOW_TRACKING_URI`` (or an explicit
``tracking_uri``) switches to a team's tracking server with no code change.
"""

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException

from cityagent.errors import CityAgentError
from cityagent.training import tracking

_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else sqlite under ``CITYAGENT_HOME`` (as training uses)."""
    return tracking.tracking_uri(tracking_uri)


def get_client(tracking_uri: str | None = None) -> MlflowClient:
    """An MLflow client on the resolved URI; an http(s) server that does not answer fails fast with a clear error."""
    return tracking.client_for(tracking_uri)


def is_not_found(e: MlflowException) -> bool:
    return e.error_code in _NOT_FOUND


def known_models(client: MlflowClient) -> list[str]:
    """Names of every registered model, sorted."""
    names, token = [], None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        names += [m.name for m in page]
        token = page.token
        if not token:
            return sorted(names)


def get_registered_model(client: MlflowClient, name: str) -> RegisteredModel:
    """The registered model ``name``; an unknown name lists the known ones."""
    try:
        return client.get_registered_model(name)
    except MlflowException as e:
        if not is_not_found(e):
            raise
        known = known_models(client)
        hint = f"known models: {', '.join(known)}" if known else "the registry is empty; export a training run first"
        raise CityAgentError(f"no registered model {name!r} at {client.tracking_uri}; {hint}.") from e


def list_model_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    """Every version of ``name``, oldest first."""
    return sorted(search_versions(client, f"name = '{name}'"), key=lambda v: int(v.version))


def search_versions(client: MlflowClient, filter_string: str) -> list[ModelVersion]:
    """Every model version (of any registered model) matching ``filter_string``, e.g. ``run_id = '...'``."""
    versions, token = [], None
    while True:
        page = client.search_model_versions(filter_string, max_results=1000, page_token=token)
        versions += list(page)
        token = page.token
        if not token:
            return versions


def get_model_version(client: MlflowClient, name: str, version: str | int) -> ModelVersion:
    """Version ``version`` of ``name``; a missing one lists the versions that exist."""
    get_registered_model(client, name)
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as e:
        if not is_not_found(e):
            raise
        have = [str(v.version) for v in list_model_versions(client, name)]
        raise CityAgentError(
            f"model {name!r} has no version {version!r}; existing versions: {', '.join(have) or 'none'}."
        ) from e
