"""The append-only log of alias moves, kept in MLflow itself so it lives wherever the tracking server lives.

Each move is one registered-model tag ``cityagent.history.000007`` holding a JSON object; tags are never
rewritten or deleted, so the log only grows. One move per tag keeps each value far below the 5000-character
limit of a registered-model tag in MLflow's SQL schema.

An alias is set before its entry is written (a failed write puts it back), so a process killed in between leaves an
alias where no entry put it; so does a move made outside cityagent (MLflow's UI). ``history`` shows each such alias
as an ``unrecorded`` entry, and the next write to the log records it for good (``record_unrecorded``).
"""

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from mlflow import MlflowClient
from mlflow.entities.model_registry import RegisteredModel

from cityagent.errors import CityAgentError
from cityagent.training.registry.store import get_client, get_registered_model

TAG_PREFIX = "cityagent.history."
MAX_TAG_CHARS = 5000  # VARCHAR(5000) in MLflow's registered_model_tags table
NON_MOVES = ("refuse", "failed")  # decisions recorded in the log that left every alias where it was
UNRECORDED = "unrecorded"  # an alias found where no recorded move put it


@dataclass(frozen=True)
class Move:
    """One alias move.

    Args:
        seq: position in the log, from 1.
        at: when, ISO 8601 in UTC.
        actor: who (the ``actor`` argument or $USER).
        action: ``promote``, ``rollback`` or ``export`` (a fresh challenger); ``refuse`` and ``failed`` record a
            retrain whose challenger lost the gate or never got there (no alias moved: ``to_version`` is the
            version that was judged, or the holder when none was); ``unrecorded``: the alias was found on
            ``to_version`` with no entry for that move (``at`` is when it was found).
        alias: the alias that moved.
        from_version: the version that held it before, or None.
        to_version: the version that holds it after.
        reason: why, in the actor's words.
        metrics: key metrics of ``to_version`` at that moment.
    """

    seq: int
    at: str
    actor: str
    action: str
    alias: str
    from_version: str | None
    to_version: str
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Move":
        return cls(**json.loads(text))


def tag_key(seq: int) -> str:
    return f"{TAG_PREFIX}{seq:06d}"


def read_moves(client: MlflowClient, name: str) -> list[Move]:
    """Every recorded move of ``name``, oldest first."""
    return _recorded(get_registered_model(client, name))


def _recorded(model: RegisteredModel) -> list[Move]:
    moves = [Move.from_json(v) for k, v in model.tags.items() if k.startswith(TAG_PREFIX)]
    return sorted(moves, key=lambda m: m.seq)


def unrecorded_moves(model: RegisteredModel, moves: list[Move]) -> list[Move]:
    """An ``unrecorded`` entry, numbered after ``moves``, for each alias of ``model`` not where the last recorded
    move of it put it."""
    last: dict[str, str] = {}
    for m in moves:
        if m.action not in NON_MOVES:
            last[m.alias] = m.to_version
    seq, at = max((m.seq for m in moves), default=0), datetime.now(UTC).isoformat(timespec="seconds")
    found = []
    for alias, version in sorted(model.aliases.items()):
        was = last.get(alias)
        if was == str(version):
            continue
        seq += 1
        why = (
            f"{alias} found on v{version} where the last recorded move put v{was or '-'}: a move cut short before "
            "its entry was written, or made outside cityagent"
        )
        found.append(Move(seq, at, "cityagent", UNRECORDED, alias, was, str(version), why))
    return found


def unrecorded_aliases(model: RegisteredModel) -> set[str]:
    """The aliases of ``model`` that ``history`` shows as ``unrecorded`` (moved outside cityagent, or cut short)."""
    return {m.alias for m in unrecorded_moves(model, _recorded(model))}


def moves_and_unrecorded(client: MlflowClient, name: str) -> list[Move]:
    """The recorded moves of ``name`` followed by its ``unrecorded`` ones, oldest first (nothing is written)."""
    model = get_registered_model(client, name)
    moves = _recorded(model)
    return moves + unrecorded_moves(model, moves)


def record_unrecorded(client: MlflowClient, name: str) -> None:
    """Write the ``unrecorded`` entries ``history`` shows, so the log is whole before its next entry."""
    model = get_registered_model(client, name)
    for move in unrecorded_moves(model, _recorded(model)):
        append_move(client, name, move)


def next_seq(client: MlflowClient, name: str) -> int:
    tags = get_registered_model(client, name).tags
    seqs = [int(k[len(TAG_PREFIX) :]) for k in tags if k.startswith(TAG_PREFIX)]
    return max(seqs, default=0) + 1


def check_size(move: Move) -> str:
    """The move's JSON, or an error before anything is written when the reason makes it too long."""
    text = move.to_json()
    if len(text) > MAX_TAG_CHARS:
        raise CityAgentError(
            f"the history entry would be {len(text)} characters, over MLflow's {MAX_TAG_CHARS}; shorten the reason."
        )
    return text


def append_move(client: MlflowClient, name: str, move: Move) -> None:
    """Write ``move`` as the next numbered tag (never overwriting an existing one)."""
    client.set_registered_model_tag(name, tag_key(move.seq), check_size(move))


def alias_stack(moves: list[Move], alias: str) -> list[str]:
    """Replay the log of ``alias``: promotions push, a rollback pops back to its target. Top = last entry."""
    stack: list[str] = []
    for m in moves:
        if m.alias != alias or m.action in NON_MOVES:
            continue
        if m.action == "rollback":
            while stack and stack[-1] != m.to_version:
                stack.pop()
            if not stack:
                stack.append(m.to_version)
        else:
            stack.append(m.to_version)
    return stack


def history(name: str, *, tracking_uri: str | None = None) -> list[Move]:
    """Every alias move of registered model ``name``, oldest first; an alias found where no recorded move put it
    comes last, as an ``unrecorded`` entry.

    Args:
        name: a registered model name.
        tracking_uri: MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite under CITYAGENT_HOME).
    """
    return moves_and_unrecorded(get_client(tracking_uri), name)


def record_decision(
    name: str,
    version: str | None,
    *,
    reason: str,
    action: str = "refuse",
    alias: str = "champion",
    actor: str | None = None,
    metrics: dict[str, float] | None = None,
    tracking_uri: str | None = None,
) -> Move:
    """Append a decision that moved no alias (a challenger refused by the gate, or a failed retrain) to the log.

    Args:
        name: registered model name.
        version: the challenger version judged, or None when the retrain failed before registering one.
        reason: why, e.g. the gate's verdict (cut to fit MLflow's tag limit).
        action: one of ``NON_MOVES``.
        alias: the alias that stayed put.
        actor: who; default $USER.
        metrics: the challenger's scores on the gate window.
        tracking_uri: MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite under CITYAGENT_HOME).
    """
    if action not in NON_MOVES:
        raise CityAgentError(f"record_decision records {NON_MOVES}, not {action!r}; move aliases with set_alias")
    client = get_client(tracking_uri)
    record_unrecorded(client, name)
    holder = get_registered_model(client, name).aliases.get(alias)
    holder = None if holder is None else str(holder)
    move = Move(
        seq=next_seq(client, name),
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        actor=actor or os.environ.get("USER") or "unknown",
        action=action,
        alias=alias,
        from_version=holder,
        to_version=str(version) if version is not None else (holder or "-"),
        reason=reason.strip()[:2000] or action,
        metrics={k: float(v) for k, v in (metrics or {}).items()},
    )
    append_move(client, name, move)
    return move
