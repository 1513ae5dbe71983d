"""`cityagent hub ...`: synthesise, import, copy, inspect and validate city data hubs."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from cityagent.agent.console import console
from cityagent.errors import ConfigError, HubError

if TYPE_CHECKING:  # validation is imported when a command runs
    from cityagent.hub.validate import Report

hub_app = typer.Typer(help="The city data hub: synthesise, import, copy and validate.", no_args_is_help=True)
FORCE_HELP = "Replace a hub already at the target; without it an existing hub is never overwritten."


def print_report(report: "Report", location: str) -> None:
    """Show a validation report: a table summary, then every issue."""
    summary = Table(title=f"hub {location}", title_justify="left")
    for col in ("table", "rows", "ids", "from", "to"):
        summary.add_column(col)
    for name, info in report.tables.items():
        summary.add_row(name, *(str(info.get(k, "")) for k in ("rows", "ids", "from", "to")))
    console.print(summary)
    for issue in report.issues:
        style = "red" if issue.level == "error" else "yellow"
        console.print(f"[{style}]{issue}[/]", highlight=False)
    verdict = "[green]valid[/]" if report.ok else "[red]invalid[/]"
    console.print(f"{verdict}: {len(report.errors)} error(s), {len(report.warnings)} warning(s)")


@contextmanager
def unused(target: str) -> Iterator[None]:
    """Hold the agent loop's lock on an existing local hub while a command replaces it: an agent running on it
    would go on writing into the directory moved aside, and a second agent could start on the new one."""
    from cityagent.agent.lock import HubBusy, hub_lock
    from cityagent.hub.hub import MANIFEST
    from cityagent.hub.io import is_sql_url

    path = Path(target).expanduser()
    if is_sql_url(target) or "://" in target or not (path / MANIFEST).is_file():  # only a hub has agents
        yield
        return
    try:
        with hub_lock(path):
            yield
    except HubBusy as e:
        h = e.holder
        who = f" (pid {h.pid} on {h.host} since {h.since.isoformat(timespec='seconds')})" if h else ""
        raise HubError(
            f"cannot replace {target}: an agent runs on it{who}; stop the agent first, then run this again"
        ) from e


@hub_app.command()
def validate(
    location: str = typer.Argument(..., help="Hub directory, fsspec URI or SQL URL."),
    prefix: str = typer.Option("", help="SQL table-name prefix."),
) -> None:
    """Check a hub against the table contracts; exit 1 when it has errors (gaps are warnings)."""
    from cityagent.hub import read_hub
    from cityagent.hub.validate import validate_hub

    report = validate_hub(read_hub(location, prefix=prefix))
    print_report(report, location)
    if not report.ok:
        raise typer.Exit(1)


@hub_app.command()
def synth(
    out: Path = typer.Option(..., help="Directory to write the hub to: new or empty (or a hub, with --force)."),
    sensors: int = typer.Option(64, help="Road sensors."),
    zones: int = typer.Option(16, help="Demand zones (rounded to a grid)."),
    days: int = typer.Option(7, help="Days of readings."),
    step: str = typer.Option("5min", help="Reading interval as a pandas offset (5min, 15min, 1h)."),
    seed: int = typer.Option(0, help="Random seed; the same seed writes the same city."),
    start: str = typer.Option("2026-03-02", help="First day (local date, Asia/Shanghai)."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Write a synthetic Pengcheng-like city: roads, sensors, weather, demand and accidents."""
    from cityagent.hub.replace import check_replace
    from cityagent.hub.synth import synthesize

    check_replace(out, force=force)
    with unused(str(out)):
        path = synthesize(out, sensors=sensors, zones=zones, days=days, step=step, seed=seed, start=start)
    console.print(f"[green]wrote[/] synthetic hub to {path}")


def _options(pairs: list[str]) -> dict[str, str]:
    opts = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set {pair!r} must look like key=value")
        key, value = pair.split("=", 1)
        opts[key.strip()] = value.strip()
    return opts


@hub_app.command("import")
def import_(
    kind: str = typer.Argument(..., help="Importer: tgcn-csv, uctb, gsnet or jonas."),
    source: Path = typer.Argument(..., help="The public file (speed CSV, UCTB tar.gz, GSNet npz/zip, JONAS npz)."),
    out: str = typer.Option(..., help="Hub location to write (directory, URI or SQL URL)."),
    adj: Path = typer.Option(None, help="tgcn-csv: the adjacency CSV."),
    mode: str = typer.Option(None, help="jonas: taxi or bike."),
    fmt: str = typer.Option("parquet", "--format", help="parquet or csv for directories."),
    set_: list[str] = typer.Option([], "--set", help="Other importer options as key=value."),
    prefix: str = typer.Option("", help="SQL table-name prefix when --out is a SQL URL."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Turn a public benchmark file into a validated hub."""
    from cityagent.hub import write_hub
    from cityagent.hub.importers import import_dataset
    from cityagent.hub.replace import check_replace
    from cityagent.hub.validate import validate_hub

    opts = _options(set_)
    check_replace(out, prefix=prefix, force=force)
    if adj is not None:
        opts["adj"] = adj
    if mode is not None:
        opts["mode"] = mode
    hub = import_dataset(kind, source, **opts)
    report = validate_hub(hub)
    if not report.ok:
        print_report(report, str(source))
        raise typer.Exit(1)
    with unused(out):
        write_hub(hub, out, format=fmt, prefix=prefix)  # type: ignore[arg-type]
    console.print(f"[green]imported[/] {kind} {source} → {out}: {hub.summary()}")


@hub_app.command()
def copy(
    source: str = typer.Argument(..., help="Hub to read (directory, URI or SQL URL)."),
    dest: str = typer.Argument(..., help="Where to write it (directory, URI or SQL URL)."),
    fmt: str = typer.Option("parquet", "--format", help="parquet or csv for directories."),
    prefix: str = typer.Option("", help="SQL table-name prefix on both sides."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    allow_invalid: bool = typer.Option(
        False,
        "--allow-invalid",
        help="Copy a hub that fails validation (e.g. to fix it in SQL); without it such a hub is refused.",
    ),
) -> None:
    """Copy a validated hub between files and SQL, e.g. into PostgreSQL for a team."""
    from cityagent.hub import read_hub, write_hub
    from cityagent.hub.replace import check_replace
    from cityagent.hub.validate import validate_hub

    check_replace(dest, prefix=prefix, force=force, elsewhere="DEST")
    hub = read_hub(source, prefix=prefix)
    report = validate_hub(hub)  # data is validated on its way in, as `hub import` does
    if not report.ok:
        print_report(report, source)
        if not allow_invalid:
            console.print(
                f"[red]refused[/]: {source} has {len(report.errors)} validation error(s) (above); "
                "fix them, or pass --allow-invalid to copy it as it is"
            )
            raise typer.Exit(1)
        console.print("[yellow]copying anyway (--allow-invalid)[/]")
    with unused(dest):
        write_hub(hub, dest, format=fmt, prefix=prefix)  # type: ignore[arg-type]
    console.print(f"[green]copied[/] {source} → {dest}: {hub.summary()}")


@hub_app.command()
def compact(
    location: Path = typer.Argument(..., help="A local hub directory."),
    table: list[str] = typer.Option([], "--table", help="Only this partitioned table (repeatable); default all."),
    min_parts: int = typer.Option(2, "--min-parts", min=2, help="Leave date folders with fewer part files alone."),
) -> None:
    """Merge each date folder's part files into one, so reading the hub opens a few files instead of thousands.

    The listener and the agent compact what they append as they go; this compacts a whole hub (one written by an
    older version, or what a stopped listener left). Safe beside a running listener and agent: readers see the
    old parts or the merged one, never both.
    """
    from cityagent.agent.compact import compact_hub

    results = compact_hub(location, table or None, min_parts)
    done = [r for r in results if r.path is not None]
    for r in results:
        if r.skipped:
            console.print(f"[yellow]left[/] {r.folder}: {r.skipped}", highlight=False)
    parts, rows = sum(r.parts for r in done), sum(r.rows for r in done)
    removed = sum(r.removed for r in results) - parts  # files an interrupted compaction had left
    extra = f"; removed {removed} file(s) an interrupted compaction left" if removed else ""
    console.print(
        f"[green]compacted[/] {len(done)} of {len(results)} date folder(s) of {location}: {parts} part files → "
        f"{len(done)} ({rows} rows){extra}",
        highlight=False,
    )
