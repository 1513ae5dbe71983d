"""Run ids as users type them: a full MLflow run id, or a unique prefix of one (like git's short hashes).

``cityagent models list`` shows 8 characters; every command that takes a RUN_ID resolves such a prefix here.
A full 32-character id is one ``get_run``; a prefix is one server-side ``attributes.run_id LIKE 'abc123%'`` search,
so it costs the same on the sqlite store and on a tracking server.
"""

import re

from mlflow import MlflowClient
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException

from cityagent.errors import CityAgentError
from cityagent.training.registry.store import is_not_found

MIN_PREFIX = 6
FULL_LENGTH = 32  # uuid4().hex, what MLflow's stores give a run
SHOWN = 10  # matches listed when a prefix is ambiguous
HOW_TO_LIST = (
    "`cityagent train` prints run ids, `cityagent models list` shows the exported ones, "
    "`mlflow runs list --experiment-id ID` lists them all"
)
_HEX = re.compile(r"[0-9a-fA-F]+")


def resolve_run_id(client: MlflowClient, run_id: str) -> str:
    """The full id of the run that ``run_id`` names: the id itself, or the one run whose id starts with it.

    Args:
        client: the tracking store to look in.
        run_id: a full run id, or at least 6 hex characters of one (case-insensitive).

    Raises:
        CityAgentError: no such run, a prefix shared by several runs (naming them), or a prefix that is too short.
    """
    given = run_id.strip()
    if _HEX.fullmatch(given):  # MLflow's ids are lower-case hex
        given = given.lower()
        if len(given) < MIN_PREFIX:
            raise CityAgentError(
                f"run id prefix {given!r} is too short; give at least {MIN_PREFIX} characters ({HOW_TO_LIST})."
            )
        if len(given) < FULL_LENGTH:
            return _by_prefix(client, given)
    try:  # the fast path: a full id (or another store's id format) is looked up directly
        return client.get_run(given).info.run_id
    except MlflowException as e:
        if not is_not_found(e):
            raise
        raise CityAgentError(
            f"no run {given!r} at {client.tracking_uri}; check the id or the tracking URI ({HOW_TO_LIST})."
        ) from e


def _by_prefix(client: MlflowClient, prefix: str) -> str:
    """The one run whose id starts with ``prefix`` (lower-case hex, so no LIKE wildcards), searched server-side."""
    experiments = _experiment_ids(client)
    try:
        runs = (
            client.search_runs(
                experiments,
                filter_string=f"attributes.run_id LIKE '{prefix}%'",
                run_view_type=ViewType.ALL,
                max_results=SHOWN + 1,
            )
            if experiments
            else []
        )
    except MlflowException as e:  # an older tracking server that cannot filter run ids with LIKE
        if e.error_code != "INVALID_PARAMETER_VALUE":
            raise
        raise CityAgentError(
            f"the tracking server {client.tracking_uri} cannot look up run id prefixes ({e.message}); "
            f"give the full {FULL_LENGTH}-character run id."
        ) from e
    ids = sorted(r.info.run_id for r in runs)
    if not ids:
        raise CityAgentError(f"no run id starts with {prefix!r} at {client.tracking_uri}; check it ({HOW_TO_LIST}).")
    if len(ids) > 1:
        more = " and more" if len(ids) > SHOWN else ""
        raise CityAgentError(
            f"run id prefix {prefix!r} is ambiguous: it matches {', '.join(ids[:SHOWN])}{more}; give more characters."
        )
    return ids[0]


def _experiment_ids(client: MlflowClient) -> list[str]:
    """Every experiment id in the store, deleted ones too (their runs can still be exported or evaluated)."""
    ids, token = [], None
    while True:
        page = client.search_experiments(view_type=ViewType.ALL, max_results=1000, page_token=token)
        ids += [e.experiment_id for e in page]
        token = page.token
        if not token:
            return ids
