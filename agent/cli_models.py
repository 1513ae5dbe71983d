"""`cityagent models list | promote | rollback | history | prune` and `cityagent export RUN_ID`.

MLflow is imported inside each command so that `cityagent --help` stays fast.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.table import Table

from cityagent.agent.console import console, fail
from cityagent.errors import CityAgentError, ConfigError

if TYPE_CHECKING:  # `cityagent --help` stays fast: no mlflow at import
    from cityagent.training.registry import Move, VersionRow

models_app = typer.Typer(
    help="The model registry: versions, aliases (champion, challenger), history, rollback.", no_args_is_help=True
)

LIST_LAST = 10  # versions per model `models list` shows (plus aliased ones): a daily retrain adds 365 a year
HISTORY_LAST = 20  # moves `models history` shows
TRACKING = typer.Option(
    None, "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite under $CITYAGENT_HOME)."
)
FORCE = typer.Option(
    False,
    "--force",
    help="Move the alias even when the version expects a different input (node ids, input_len, step, features) "
    "than the version holding it now, or its ONNX file cannot be loaded; clients that still send the old input, "
    "or a server that cannot load the model, will break.",
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


def _metrics(metrics: dict[str, float], prefix: str = "") -> str:
    """One ``name=value`` per line (``prefix`` cut from the names), so a narrow column never splits a value."""
    return "\n".join(f"{k.removeprefix(prefix)}={v:.4g}" for k, v in metrics.items()) or "-"


def _table() -> Table:
    """A table that stays readable in an 80-column terminal or CI log: a header rule, no side borders.

    Every text column folds rather than cuts, so a very long name wraps onto a second line but is never lost.
    """
    return Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))


def versions_table(rows: list[VersionRow]) -> Table:
    """``cityagent models list`` as a table: whole names, aliases and dates, one test metric per line."""
    table = _table()
    for header in ("name", "ver", "aliases", "test metrics", "created", "run"):
        table.add_column(header, overflow="fold", justify="right" if header == "ver" else "left")
    for r in rows:
        created = r.created.strftime("%Y-%m-%d\n%H:%M UTC") if r.created else "-"
        aliases = "\n".join(f"{a} (unrecorded)" if a in r.unrecorded else a for a in r.aliases) or "-"
        table.add_row(r.name, r.version, aliases, _metrics(r.metrics, "test_"), created, (r.run_id or "-")[:8])
    return table


def unrecorded_notes(rows: list[VersionRow]) -> list[str]:
    """One line per model whose table marks an alias ``(unrecorded)``: what it means and what to run."""
    moved: dict[str, list[str]] = {}
    for r in rows:
        moved.setdefault(r.name, []).extend(f"{a} (v{r.version})" for a in r.unrecorded)
    notes = []
    for name, aliases in moved.items():
        if aliases:
            verb, them = ("are", "them") if len(aliases) > 1 else ("is", "it")
            notes.append(
                f"{name}: {', '.join(aliases)} {verb} not where the last recorded move put {them} (moved outside "
                f"cityagent, e.g. in MLflow's UI, or a move cut short); `cityagent models history {name}` shows the "
                "move, and the next promote or rollback records it."
            )
    return notes


def _move(m: Move) -> str:
    """``v1 → v2`` for an alias that moved; a refusal or a failed retrain moved nothing, and says so."""
    from cityagent.training.registry.history import NON_MOVES

    if m.action in NON_MOVES:
        stays = f" ({m.alias} v{m.from_version} stays)" if m.from_version else ""
        if m.to_version == "-":  # a retrain that failed before it registered a version
            return f"failed, no version registered{stays}"
        return f"v{m.to_version} {'refused' if m.action == 'refuse' else 'failed'}{stays}"
    return f"v{m.from_version or '-'} → v{m.to_version}"


def history_table(moves: list[Move]) -> Table:
    """``cityagent models history`` as a table: when and who, the move, then why with the metrics at that moment."""
    table = _table()
    for header in ("#", "when (UTC), who", "move", "why; metrics then"):
        table.add_column(header, overflow="fold", justify="right" if header == "#" else "left")
    for m in moves:
        when = f"{m.at.replace('+00:00', '').replace('T', chr(10))}\n{m.actor}"
        move = f"{m.action}\n{m.alias}\n{_move(m)}"
        why = m.reason + ("\n" + "  ".join(f"{k}={v:.4g}" for k, v in m.metrics.items()) if m.metrics else "")
        table.add_row(str(m.seq), when, move, why)
    return table


@models_app.command("list")
@_guarded
def list_cmd(
    name: str = typer.Argument(None, help="A registered model (task); default all."),
    last: int = typer.Option(LIST_LAST, "--last", min=0, help="Each model's newest versions shown (and aliased ones)."),
    all_: bool = typer.Option(False, "--all", help="Every version."),
    tracking_uri: str = TRACKING,
) -> None:
    """List registered model versions with their aliases and key test metrics (the newest, and every aliased one)."""
    from cityagent.training.registry import version_listing

    listing = version_listing(name, last=None if all_ else last, tracking_uri=tracking_uri)
    if not listing.rows and not listing.omitted:
        console.print("no registered models yet; train and export a run (cityagent export RUN_ID).")
        return
    if listing.rows:
        console.print(versions_table(listing.rows))
    for model, count in listing.omitted.items():
        console.print(f"{model}: {count} older version(s) not shown; --last N or --all shows them.", highlight=False)
    for note in unrecorded_notes(listing.rows):
        console.print(note, highlight=False, soft_wrap=True)


@models_app.command("promote")
@_guarded
def promote_cmd(
    name: str = typer.Argument(..., help="Registered model (task), e.g. traffic-sz."),
    version: str = typer.Argument(..., help="The version to promote."),
    reason: str = typer.Option(..., "--reason", help="Why; recorded in the history."),
    alias: str = typer.Option("champion", "--alias", help="The alias to move."),
    actor: str = typer.Option(None, "--actor", help="Who (default $USER)."),
    force: bool = FORCE,
    tracking_uri: str = TRACKING,
) -> None:
    """Point an alias (default champion) at a version and record the move.

    Refused if the version's ONNX file cannot be loaded, or it expects another input than the alias's current version
    (see --force).
    """
    from cityagent.training.registry import promote

    move = promote(name, version, alias, reason=reason, actor=actor, force=force, tracking_uri=tracking_uri)
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
    force: bool = FORCE,
    tracking_uri: str = TRACKING,
) -> None:
    """Point an alias back at the version that held it before.

    Refused if that version's ONNX file cannot be loaded, or it expects another input than the current one
    (see --force).
    """
    from cityagent.training.registry import rollback

    move = rollback(name, alias, reason=reason, actor=actor, force=force, tracking_uri=tracking_uri)
    console.print(f"[yellow]{name}[/] {alias} rolled back: v{move.from_version} → v{move.to_version}")


@models_app.command("prune")
@_guarded
def prune_cmd(
    name: str = typer.Argument(..., help="Registered model (task)."),
    keep: int = typer.Option(
        ..., "--keep", help="The newest versions that stay (and the newest of each alias's history)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say which versions would go; delete nothing."),
    tracking_uri: str = TRACKING,
) -> None:
    """Delete old versions a rollback cannot reach, with their runs and files; aliased ones and the newest stay.

    Kept: the newest --keep versions, every aliased version, and the newest --keep versions each alias held (what
    rollback goes back to). The history of moves stays whole. On a database store (the default sqlite file) the runs'
    files are removed for good; a tracking server's operators run `mlflow gc` there.
    """
    from cityagent.training.registry.prune import prune_versions

    report = prune_versions(name, keep=keep, dry_run=dry_run, tracking_uri=tracking_uri)
    if not report.pruned:
        console.print(f"{name}: nothing to prune; all {len(report.kept)} version(s) stay.", highlight=False)
        return
    verb = "would delete" if dry_run else "deleted"
    shown = ", ".join(report.pruned[:20]) + (f" and {len(report.pruned) - 20} more" if len(report.pruned) > 20 else "")
    console.print(
        f"{name}: {verb} {len(report.pruned)} version(s) ({shown}), {len(report.runs)} run(s) and "
        f"{len(report.logged_models)} logged model(s); {len(report.kept)} stay ({', '.join(report.kept)}).",
        highlight=False,
        soft_wrap=True,
    )
    if not dry_run and not report.collected and report.runs:
        console.print(
            "their runs are marked deleted; their files stay on the tracking server until `mlflow gc` runs there.",
            highlight=False,
        )


@models_app.command("history")
@_guarded
def history_cmd(
    name: str = typer.Argument(..., help="Registered model (task)."),
    last: int = typer.Option(HISTORY_LAST, "--last", min=1, help="The newest moves shown."),
    all_: bool = typer.Option(False, "--all", help="Every move, from the first."),
    tracking_uri: str = TRACKING,
) -> None:
    """The alias moves of a registered model, newest last: when, who, what, why, and the metrics then."""
    from cityagent.training.registry import history

    moves = history(name, tracking_uri=tracking_uri)
    if not moves:
        console.print(f"{name} has no alias moves yet.")
        return
    shown = moves if all_ else moves[-last:]
    if len(shown) < len(moves):
        console.print(f"{name}: {len(moves) - len(shown)} earlier move(s) not shown; --last N or --all shows them.")
    console.print(history_table(shown))


@_guarded
def export_command(
    run_id: str = typer.Argument(
        ...,
        help="An MLflow training run with a bundle/model.pt artifact: its id or a unique prefix of it "
        "(at least 6 characters, e.g. the run column of `cityagent models list`).",
    ),
    alias: str = typer.Option("challenger", "--alias", help="Alias for the new version."),
    register: bool = typer.Option(True, "--register/--no-register", help="Register a version of the task."),
    tolerance: float = typer.Option(1e-4, help="Largest relative difference torch vs ONNX Runtime."),
    tracking_uri: str = TRACKING,
) -> None:
    """Export a training run to ONNX (parity-checked), log it into the run, register it as the challenger."""
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ConfigError(f"--tolerance {tolerance} is not a relative difference; pass a number ≥ 0, e.g. 1e-4.")
    from cityagent.training.export import export_run

    result = export_run(run_id, tracking_uri=tracking_uri, register=register, alias=alias, tolerance=tolerance)
    if result.already_registered:  # e.g. by `cityagent train`: the same ONNX file, so no second version
        console.print(
            f"[green]already registered[/] as {result.name} v{result.version} ({result.model_uri}, the same ONNX file; "
            f"parity {result.parity:.2g}) → {result.onnx_path}",
            soft_wrap=True,
        )
        if alias:  # the alias moves even so (recorded in the history): on a team store that is worth a line
            console.print(f"{result.name} @{alias} → v{result.version}", highlight=False)
        return
    if result.already_logged:  # `--no-register` again: the run holds this very file already, so nothing new is logged
        console.print(
            f"[green]already logged[/] as {result.model_uri} (the same ONNX file; parity {result.parity:.2g}) → "
            f"{result.onnx_path}"
        )
        return
    console.print(f"[green]exported[/] {result.model_uri} (parity {result.parity:.2g}) → {result.onnx_path}")
    if result.differs_from:
        console.print(
            f"run was registered before as {result.name} v{', v'.join(result.differs_from)} with a different ONNX "
            f"file (another cityagent or torch version), so this export is v{result.version}"
        )
