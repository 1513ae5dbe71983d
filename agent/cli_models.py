"""`cityagent models list | promote | rollback | history` and `cityagent export RUN_ID`.

MLflow is imported inside each command so that `cityagent --help` stays fast.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

import typer
from rich.table import Table

from cityagent.agent.console import console, fail
from cityagent.errors import CityAgentError

models_app = typer.Typer(
    help="The model registry: versions, aliases (champion, challenger), history, rollback.", no_args_is_help=True
)

TRACKING = typer.Option(
    None, "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite under $CITYAGENT_HOME)."
)


@contextmanager
def _user_errors() -> Iterator[None]:
    """A CityAgentError prints one line and exits 2, like the main entry point does."""
    try:
        yield
    except CityAgentError as e:
        fail(str(e))
        raise typer.Exit(2) from e


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _user_errors():
            return fn(*args, **kwargs)

    return wrapper


def _metrics(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k}={v:.4g}" for k, v in metrics.items()) or "-"


@models_app.command("list")
@_guarded
def list_cmd(
    name: str = typer.Argument(None, help="A registered model (task); default all."), tracking_uri: str = TRACKING
) -> None:
    """List registered model versions with their aliases and key test metrics."""
    from cityagent.training.registry import list_versions

    rows = list_versions(name, tracking_uri=tracking_uri)
    if not rows:
        console.print("no registered models yet; train and export a run (cityagent export RUN_ID).")
        return
    table = Table("name", "version", "aliases", "key metrics", "created (UTC)", "run")
    for r in rows:
        created = r.created.strftime("%Y-%m-%d %H:%M") if r.created else "-"
        aliases = ", ".join(r.aliases) or "-"
        table.add_row(r.name, r.version, aliases, _metrics(r.metrics), created, (r.run_id or "-")[:12])
    console.print(table)


@models_app.command("promote")
@_guarded
def promote_cmd(
    name: str = typer.Argument(..., help="Registered model (task), e.g. traffic-sz."),
    version: str = typer.Argument(..., help="The version to promote."),
    reason: str = typer.Option(..., "--reason", help="Why; recorded in the history."),
    alias: str = typer.Option("champion", "--alias", help="The alias to move."),
    actor: str = typer.Option(None, "--actor", help="Who (default $USER)."),
    tracking_uri: str = TRACKING,
) -> None:
    """Point an alias (default champion) at a version and record the move."""
    from cityagent.training.registry import promote

    move = promote(name, version, alias, reason=reason, actor=actor, tracking_uri=tracking_uri)
    if move is None:
        console.print(f"{name} v{version} already is {alias}; nothing changed.")
    else:
        console.print(f"[green]{name}[/] {alias}: v{move.from_version or '-'} → v{move.to_version}")


@models_app.command("rollback")
@_guarded
def rollback_cmd(
    name: str = typer.Argument(..., help="Registered model (task)."),
    reason: str = typer.Option("rollback", "--reason", help="Why; recorded in the history."),
    alias: str = typer.Option("champion", "--alias", help="The alias to roll back."),
    actor: str = typer.Option(None, "--actor", help="Who (default $USER)."),
    tracking_uri: str = TRACKING,
) -> None:
    """Point an alias back at the version that held it before."""
    from cityagent.training.registry import rollback

    move = rollback(name, alias, reason=reason, actor=actor, tracking_uri=tracking_uri)
    console.print(f"[yellow]{name}[/] {alias} rolled back: v{move.from_version} → v{move.to_version}")


@models_app.command("history")
@_guarded
def history_cmd(name: str = typer.Argument(..., help="Registered model (task)."), tracking_uri: str = TRACKING) -> None:
    """Every alias move of a registered model: when, who, what, why, and the metrics then."""
    from cityagent.training.registry import history

    moves = history(name, tracking_uri=tracking_uri)
    if not moves:
        console.print(f"{name} has no alias moves yet.")
        return
    table = Table("#", "when (UTC)", "who", "action", "alias", "from → to", "reason", "metrics")
    for m in moves:
        table.add_row(
            str(m.seq),
            m.at.replace("+00:00", ""),
            m.actor,
            m.action,
            m.alias,
            f"v{m.from_version or '-'} → v{m.to_version}",
            m.reason,
            _metrics(m.metrics),
        )
    console.print(table)


@_guarded
def export_command(
    run_id: str = typer.Argument(..., help="An MLflow training run with a bundle/model.pt artifact."),
    alias: str = typer.Option("challenger", "--alias", help="Alias for the new version."),
    register: bool = typer.Option(True, "--register/--no-register", help="Register a version of the task."),
    tolerance: float = typer.Option(1e-4, help="Largest relative difference torch vs ONNX Runtime."),
    tracking_uri: str = TRACKING,
) -> None:
    """Export a training run to ONNX (parity-checked), log it into the run, register it as the challenger."""
    from cityagent.training.export import export_run

    result = export_run(run_id, tracking_uri=tracking_uri, register=register, alias=alias, tolerance=tolerance)
    console.print(f"[green]exported[/] {result.model_uri} (parity {result.parity:.2g}) → {result.onnx_path}")
