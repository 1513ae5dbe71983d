"""The model registry on MLflow: versions, aliases (champion, challenger) and an append-only history of moves.

``promote``/``rollback`` move an alias and log who, when, why and the metrics at that moment; ``history``
reads the log back; ``prune_versions`` deletes old versions no alias or rollback needs. Everything works against
the local sqlite store or a team's tracking server.
"""

from cityagent.training.registry.aliases import promote, rollback, set_alias
from cityagent.training.registry.history import Move, history, record_decision
from cityagent.training.registry.prune import PruneReport, prune_versions
from cityagent.training.registry.store import get_client, resolve_tracking_uri
from cityagent.training.registry.versions import Listing, VersionRow, list_versions, version_listing

__all__ = [
    "Listing",
    "Move",
    "PruneReport",
    "VersionRow",
    "get_client",
    "history",
    "list_versions",
    "promote",
    "prune_versions",
    "record_decision",
    "resolve_tracking_uri",
    "rollback",
    "set_alias",
    "version_listing",
]
