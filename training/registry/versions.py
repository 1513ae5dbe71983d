"""What the registry holds: one row per model version with its aliases and key metrics."""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from cityagent.training.registry.history import unrecorded_aliases
from cityagent.training.registry.store import (
    get_client,
    get_registered_model,
    is_not_found,
    known_models,
    list_model_versions,
)

KEY_METRIC_PREFIXES = ("test_",)  # the held-out metrics a promotion is judged on
PER_STEP = re.compile(r"_h\d+$")  # per-horizon-step variants (test_mae_h3) stay in MLflow, out of the summary
MAX_KEY_METRICS = 8


@dataclass(frozen=True)
class VersionRow:
    """One registered model version.

    Args:
        name: registered model (one per task, e.g. ``traffic-sz``).
        version: version number as a string.
        aliases: aliases pointing at it (``champion``, ``challenger``), sorted.
        metrics: key metrics of its training run (``test_mae``, ``test_rmse``, ...), real units.
        created: creation time, UTC.
        run_id: the training run it came from, or None.
        unrecorded: those of ``aliases`` not where the last recorded move of them put them (set in MLflow's UI or
            by a client directly, or a move cut short); ``cityagent models history`` shows the move as
            ``unrecorded`` and the next promote or rollback records it.
    """

    name: str
    version: str
    aliases: list[str]
    metrics: dict[str, float] = field(default_factory=dict)
    created: datetime | None = None
    run_id: str | None = None
    unrecorded: list[str] = field(default_factory=list)


def key_metrics(client: MlflowClient, run_id: str | None) -> dict[str, float]:
    """The run's overall test metrics (at most MAX_KEY_METRICS, sorted by name); {} when the run is gone."""
    if not run_id:
        return {}
    try:
        metrics = client.get_run(run_id).data.metrics
    except MlflowException as e:
        if is_not_found(e):
            return {}
        raise
    keys = sorted(k for k in metrics if k.startswith(KEY_METRIC_PREFIXES) and not PER_STEP.search(k))
    keys = keys[:MAX_KEY_METRICS]
    return {k: float(metrics[k]) for k in keys}


def version_metrics(client: MlflowClient, mv: ModelVersion) -> dict[str, float]:
    return key_metrics(client, mv.run_id)


@dataclass(frozen=True)
class Listing:
    """What ``cityagent models list`` shows: ``rows``, and per model how many older versions were left out."""

    rows: list[VersionRow]
    omitted: dict[str, int] = field(default_factory=dict)


def version_listing(name: str | None = None, *, last: int | None = None, tracking_uri: str | None = None) -> Listing:
    """The versions of ``name`` (or of every registered model), oldest first: with ``last``, only each model's
    newest ``last`` and every version an alias points at (a daily retrain registers 365 versions a year, and each
    row costs a request for its run's metrics).
    """
    client = get_client(tracking_uri)
    names = [name] if name is not None else known_models(client)
    rows, omitted = [], {}
    for n in names:
        model = get_registered_model(client, n)
        off_log = unrecorded_aliases(model)
        by_version: dict[str, list[str]] = {}
        for alias, v in model.aliases.items():
            by_version.setdefault(str(v), []).append(alias)
        versions = list_model_versions(client, n)  # oldest first
        if last is not None:
            newest = {str(mv.version) for mv in versions[max(len(versions) - last, 0) :]}
            shown = [mv for mv in versions if str(mv.version) in newest or str(mv.version) in by_version]
            if len(shown) < len(versions):
                omitted[n] = len(versions) - len(shown)
            versions = shown
        for mv in versions:
            aliases = sorted(by_version.get(str(mv.version), []))
            rows.append(
                VersionRow(
                    name=n,
                    version=str(mv.version),
                    aliases=aliases,
                    metrics=version_metrics(client, mv),
                    created=datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC),
                    run_id=mv.run_id,
                    unrecorded=[a for a in aliases if a in off_log],
                )
            )
    return Listing(rows, omitted)


def list_versions(name: str | None = None, *, tracking_uri: str | None = None) -> list[VersionRow]:
    """Every version of ``name`` (or of every registered model), oldest first.

    Args:
        name: a registered model name; None lists all of them.
        tracking_uri: MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite under CITYAGENT_HOME).
    """
    return version_listing(name, tracking_uri=tracking_uri).rows
