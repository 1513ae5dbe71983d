"""The `cityagent` command: the system's face. Each sub-command lives in its own module."""

import sys

import typer

from cityagent.agent.cli_agent_ops import listen
from cityagent.agent.cli_hub import hub_app
from cityagent.agent.cli_models import export_command, models_app
from cityagent.agent.cli_serve import serve
from cityagent.agent.cli_train import evaluate, train, tune
from cityagent.agent.console import console, fail
from cityagent.errors import CityAgentError

app = typer.Typer(
    name="cityagent",
    help="The Pengcheng deep-learning city agent: sense the hub, learn models, serve them, act and evolve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
hub_app.command()(listen)
app.add_typer(hub_app, name="hub")
app.command()(train)
app.command()(evaluate)
app.command()(tune)
app.add_typer(models_app, name="models")
app.command("export")(export_command)
app.command()(serve)


@app.command()
def demo(
    out: str = typer.Option(None, help="Where to put the synthetic city hub (default: $CITYAGENT_HOME/hub)."),
    sensors: int = typer.Option(64, help="Road sensors in the synthetic city."),
    zones: int = typer.Option(16, help="Demand zones (a square grid)."),
    days: int = typer.Option(14, help="Days of readings."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same city."),
) -> None:
    """Run the main job on the embedded synthetic city: synthesise a hub and validate it."""
    from cityagent.agent.demo import run_demo

    run_demo(out=out, sensors=sensors, zones=zones, days=days, seed=seed)


def main() -> None:
    """Console entry point: user errors print one clear line and exit 2, never a traceback."""
    try:
        app()
    except CityAgentError as e:
        fail(str(e))
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
