"""Alias moves: promote a version, roll an alias back, and record every move in the history.

Every check runs before the first write, and a failed history write puts the alias back, so an error
leaves the registry exactly as it was. A kill between the alias and its entry cannot be undone that way; ``history``
shows such an alias as ``unrecorded`` and the next move records it first.

A promotion or rollback to a version that expects a different input than the alias's current holder (other node ids,
window, step or features), or whose ONNX file ONNX Runtime cannot load or no longer matches its export digest, is
refused unless forced: servers hot-swap to the alias, and every client would break.
"""

import getpass
import os
import re
from datetime import UTC, datetime

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from cityagent.errors import CityAgentError
from cityagent.training.registry.contract import check_same_input
from cityagent.training.registry.history import (
    Move,
    alias_stack,
    append_move,
    check_size,
    moves_and_unrecorded,
    next_seq,
    record_unrecorded,
)
from cityagent.training.registry.store import get_client, get_model_version, get_registered_model, is_not_found
from cityagent.training.registry.versions import version_metrics

_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,254}$")
_RESERVED = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)  # MLflow keeps these for itself


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def check_alias(alias: str) -> None:
    if not _ALIAS.match(alias) or _RESERVED.match(alias):
        raise CityAgentError(
            f"alias {alias!r} is not allowed; use letters, digits, '_' or '-' (not 'latest' or 'v<number>'),"
            " e.g. 'champion'."
        )


def _check_reason(reason: str | None) -> str:
    if not reason or not reason.strip():
        raise CityAgentError("say why the alias moves: pass a non-empty reason (--reason TEXT).")
    return reason.strip()


def current_holder(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version holding ``alias`` of ``name``, or None."""
    v = get_registered_model(client, name).aliases.get(alias)
    return None if v is None else str(v)


def _move(client: MlflowClient, name: str, alias: str, to_version: str, move: Move) -> None:
    """Point ``alias`` at ``to_version`` and log ``move``; on a failed log, put the alias back."""
    check_size(move)
    client.set_registered_model_alias(name, alias, to_version)
    try:
        append_move(client, name, move)
    except (MlflowException, OSError) as e:
        if move.from_version is None:
            client.delete_registered_model_alias(name, alias)
        else:
            client.set_registered_model_alias(name, alias, move.from_version)
        raise CityAgentError(f"could not record the move in the history of {name!r} ({e}); nothing changed.") from e


def set_alias(
    name: str,
    version: str | int,
    alias: str,
    *,
    reason: str,
    actor: str | None = None,
    action: str = "promote",
    force: bool = False,
    tracking_uri: str | None = None,
) -> Move | None:
    """Point ``alias`` of ``name`` at ``version`` and append the move to the history.

    Args:
        name: registered model name.
        version: the version to point at.
        alias: e.g. ``champion`` or ``challenger``.
        reason: why, recorded in the history.
        actor: who; default $USER.
        action: the kind of move recorded (``promote``, ``export``).
        force: move even when ``version`` expects a different input than the current holder, or its ONNX file cannot
            be loaded. An ``export``
            (a fresh challenger, which may well be trained on a grown city) is never checked.
        tracking_uri: MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite under CITYAGENT_HOME).

    Returns:
        The recorded move, or None when ``version`` already held ``alias`` (nothing is written).
    """
    check_alias(alias)
    reason = _check_reason(reason)
    client = get_client(tracking_uri)
    mv = get_model_version(client, name, version)
    to_version, from_version = str(mv.version), current_holder(client, name, alias)
    if from_version == to_version:
        return None
    if not force and action != "export":  # an export was just parity-checked through ONNX Runtime
        check_same_input(client, name, alias, from_version, to_version)
    record_unrecorded(client, name)  # an earlier move cut short: its entry first, so the log stays in order
    move = Move(
        seq=next_seq(client, name),
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        actor=_actor(actor),
        action=action,
        alias=alias,
        from_version=from_version,
        to_version=to_version,
        reason=reason,
        metrics=version_metrics(client, mv),
    )
    _move(client, name, alias, to_version, move)
    return move


def promote(
    name: str,
    version: str | int,
    alias: str = "champion",
    *,
    reason: str,
    actor: str | None = None,
    force: bool = False,
    tracking_uri: str | None = None,
) -> Move | None:
    """Make ``version`` the ``alias`` (default champion) of ``name``; see ``set_alias``.

    Raises:
        CityAgentError: ``version`` expects a different input than the current holder, or its ONNX file cannot be
            loaded, and not ``force``.
    """
    return set_alias(
        name, version, alias, reason=reason, actor=actor, action="promote", force=force, tracking_uri=tracking_uri
    )


def rollback(
    name: str,
    alias: str = "champion",
    *,
    reason: str = "rollback",
    actor: str | None = None,
    force: bool = False,
    tracking_uri: str | None = None,
) -> Move:
    """Point ``alias`` back at the version that held it before the current one (skipping deleted versions).

    Args:
        name: registered model name.
        alias: the alias to roll back (default champion).
        reason: why, recorded in the history.
        actor: who; default $USER.
        force: roll back even when the earlier version expects a different input than the current one, or its ONNX
            file cannot be loaded.
        tracking_uri: MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite under CITYAGENT_HOME).
    """
    check_alias(alias)
    reason = _check_reason(reason)
    client = get_client(tracking_uri)
    model = get_registered_model(client, name)
    current = None if model.aliases.get(alias) is None else str(model.aliases[alias])
    if current is None:
        have = ", ".join(f"{a}→v{v}" for a, v in sorted(model.aliases.items())) or "none"
        raise CityAgentError(f"model {name!r} has no alias {alias!r} to roll back (aliases: {have}); promote first.")
    stack = alias_stack(moves_and_unrecorded(client, name), alias)
    while stack and stack[-1] == current:
        stack.pop()
    target = None
    while stack and target is None:
        candidate = stack.pop()
        try:
            target = client.get_model_version(name, candidate) if candidate != current else None
        except MlflowException as e:
            if not is_not_found(e):
                raise
    if target is None:
        raise CityAgentError(
            f"model {name!r} has no earlier {alias} than version {current} in its history; "
            f"promote a specific version instead (cityagent models promote {name} VERSION --reason ...)."
        )
    if not force:
        check_same_input(client, name, alias, current, str(target.version))
    record_unrecorded(client, name)
    move = Move(
        seq=next_seq(client, name),
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        actor=_actor(actor),
        action="rollback",
        alias=alias,
        from_version=current,
        to_version=str(target.version),
        reason=reason,
        metrics=version_metrics(client, target),
    )
    _move(client, name, alias, move.to_version, move)
    return move
