"""The `cityagent` command: the system's face. Each sub-command lives in its own module."""

import os
import sys

import typer

from cityagent.agent.cli_agent import agent_app, retrain_job
from cityagent.agent.cli_agent_ops import listen, make_retrain_command
from cityagent.agent.cli_deadletters import rejected, replay
from cityagent.agent.cli_hub import hub_app
from cityagent.agent.cli_models import export_command, models_app
from cityagent.agent.cli_serve import serve
from cityagent.agent.cli_train import evaluate, train, tune
from cityagent.agent.console import console, fail, widen_for_logs
from cityagent.agent.demo import demo
from cityagent.errors import CityAgentError
from cityagent.store_check import damaged_store, redacted

app = typer.Typer(
    name="cityagent",
    help="The Pengcheng deep-learning city agent: sense the hub, learn models, serve them, act and evolve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
hub_app.command()(listen)
hub_app.command()(rejected)
hub_app.command()(replay)
app.add_typer(hub_app, name="hub")
app.command()(train)
app.command()(evaluate)
app.command()(tune)
app.add_typer(models_app, name="models")
app.command("export")(export_command)
app.command()(serve)
app.add_typer(agent_app, name="agent")
app.command("retrain")(make_retrain_command(retrain_job))
app.command()(demo)


def _is_mlflow_error(e: Exception) -> bool:
    """An error MLflow raised (a server that answers /health but refuses the API, a broken store): mlflow is only
    imported by the commands that use it, so it is looked up, not imported, here."""
    exceptions = sys.modules.get("mlflow.exceptions")
    return exceptions is not None and isinstance(e, exceptions.MlflowException)


def main() -> None:
    """Console entry point: user errors print one clear line and exit 2, never a traceback."""
    # the commands narrate their own progress; MLflow's bar for each small artifact it fetches is noise here
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    widen_for_logs()
    try:
        app()
    except CityAgentError as e:
        fail(redacted(str(e)))
        sys.exit(2)
    except Exception as e:
        damage = damaged_store(e)  # deeper than the store check before use reads: one line, not SQLAlchemy's 100
        if damage is not None:
            fail(damage)
            sys.exit(2)
        if not _is_mlflow_error(e):
            raise
        where = os.environ.get("MLFLOW_TRACKING_URI") or "the local MLflow store"
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = (
            "; add this client's host with its port (e.g. 'name:*') to the server's --allowed-hosts"
            if "Invalid Host header" in why
            else ""
        )
        fail(redacted(f"MLflow ({where}) refused the request: {why}{hint}"))
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
