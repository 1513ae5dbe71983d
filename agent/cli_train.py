"""`cityagent train | evaluate | tune`: learn models from the hub, on Ray or in-process."""

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cityagent.agent.console import console, fail
from cityagent.config_errors import nearest
from cityagent.errors import CityAgentError, ConfigError

if TYPE_CHECKING:
    from cityagent.training.config import RunConfig

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
DOMAINS = ("traffic", "demand", "risk")
# Read by Ray and MLflow when imported, and inherited by Ray's workers: their INFO lines ("Started a local Ray
# instance", "Creating initial MLflow database tables") are not the user's business; warnings still show. A value
# the user exported wins.
QUIET_ENV = {"RAY_LOGGER_LEVEL": "warning", "MLFLOW_LOGGING_LEVEL": "WARNING"}


class TrainingDiverged(CityAgentError):
    """The training loss went NaN/inf: the run is recorded (FAILED) but its model is unusable."""


def quiet_libraries() -> None:
    """Ray and MLflow at warning level for this command (call before either is imported)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def default_config(domain: str) -> Path:
    """``configs/<domain>.yaml``: the domain's default task and model."""
    if domain not in DOMAINS:
        near = nearest(domain, DOMAINS)
        hint = f"; did you mean {near!r}?" if near else ""
        raise ConfigError(f"unknown task {domain!r}; tasks are: {', '.join(DOMAINS)}{hint}")
    return CONFIG_DIR / f"{domain}.yaml"


@contextmanager
def sigterm_exits(doing: str, done: str = "nothing was registered") -> Iterator[None]:
    """A SIGTERM (cron's ``timeout``, a CI step, Kubernetes) ends the command with exit 143 and one line, never 0.

    Lightning answers SIGTERM with a bare ``SystemExit`` (exit 0) and the handler ``ray.init`` installs with
    ``sys.exit(15)``; both are recognised (``is_sigterm``). Until Lightning or Ray take over, this handler raises
    ``Interrupted`` itself (once: a second SIGTERM lets the clean-up that marks the run FAILED finish). The line names
    the MLflow run that was marked FAILED when one was open.

    Args:
        doing: what was interrupted, e.g. ``training``.
        done: what the user may rely on once a run was marked FAILED.
    """
    from cityagent.agent.schedule import SIGTERM_EXIT, Interrupted, is_sigterm
    from cityagent.interrupts import interrupt

    t0, raised = time.monotonic(), False

    def on_sigterm(signum: int, frame: object) -> None:
        nonlocal raised
        if not raised:
            raised = True
            interrupt(Interrupted("stopped by SIGTERM"))  # held back while a store write finishes

    main = threading.current_thread() is threading.main_thread()  # only the main thread may take signals
    previous = signal.signal(signal.SIGTERM, on_sigterm) if main else None
    try:
        yield
    except BaseException as e:
        if not is_sigterm(e):
            raise
        seconds = time.monotonic() - t0
        run_id, status = getattr(e, "ended_run", (None, None))  # set by TrackedRun as it marks the run
        where = (
            f"run {run_id} marked {status}; {done}"
            if run_id
            else "no MLflow run was open (it stopped before one started, or after it finished: "
            "`cityagent models list` shows what was registered)"
        )
        fail(f"{doing} interrupted by SIGTERM after {seconds:.1f} s; {where}")
        raise typer.Exit(SIGTERM_EXIT) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _overrides(
    hub: str | None, workers: int | None, address: str | None, rest: list[str], prefix: str | None = None
) -> list[str]:
    out = []
    if hub is not None:  # TaskConfig makes a local path absolute
        out.append(f"task.hub={hub}")
    if prefix is not None:
        out.append(f"task.hub_prefix={prefix}")
    if workers is not None:
        out.append(f"train.workers={workers}")
    if address is not None:
        out.append(f"train.address={address}")
    return out + list(rest)


def run_config(domain: str, config: Path | None, overrides: list[str], command: str = "train") -> "RunConfig":
    """The config of ``cityagent train|tune DOMAIN``: ``config`` (default ``configs/<domain>.yaml``) with the
    overrides, whose task must be ``domain``; a config written for another domain is refused, not relabelled."""
    from cityagent.training.config import load_config, read_yaml_tree

    path = config or default_config(domain)  # default_config refuses an unknown domain, listing the valid ones
    if config is not None:
        default_config(domain)
    cfg = load_config(path, overrides)
    stated = read_yaml_tree(path).get("task", {}).get("domain")
    said = any(o.split("=", 1)[0].strip() == "task.domain" for o in overrides)
    if not (said or stated):  # a config silent on the domain takes the one asked for
        return load_config(path, [f"task.domain={domain}", *overrides])
    if cfg.task.domain != domain:
        where = "the override task.domain" if said else f"{path} (its task.domain)"
        raise ConfigError(
            f"`cityagent {command} {domain}` was given a {cfg.task.domain} task by {where}: run "
            f"`cityagent {command} {cfg.task.domain}`, or pass a {domain} config"
        )
    return cfg


def train(
    domain: str = typer.Argument(..., help="traffic, demand or risk."),
    overrides: list[str] = typer.Argument(
        None,
        help="Config overrides as key=value, e.g. train.max_epochs=3; another model: model.name=tgcn "
        "model.params={} (its defaults); a model of your own: model.module=my_models model.name=NAME.",
    ),
    config: Path = typer.Option(None, help="A YAML config (default: configs/<task>.yaml)."),
    hub: str = typer.Option(None, help="Hub location (default: the synthetic city under $CITYAGENT_HOME)."),
    prefix: str = typer.Option(None, help="SQL hubs: the table-name prefix the hub was written with."),
    workers: int = typer.Option(None, help="Ray Train workers; 0 trains in-process."),
    address: str = typer.Option(None, help="Ray cluster address (default: $RAY_ADDRESS or a local Ray)."),
) -> None:
    """Train, evaluate and track one model; prints the headline test metrics and the MLflow run id."""
    quiet_libraries()
    from cityagent.agent.cli_metrics import print_run_metrics
    from cityagent.training.fit import fit

    cfg = run_config(domain, config, _overrides(hub, workers, address, overrides or [], prefix))
    with sigterm_exits("training"):
        result = fit(cfg)
    if result.info.get("diverged"):  # recorded as a FAILED run; its NaN metrics are not worth a table
        raise TrainingDiverged(result.info["diverged"])
    console.print(f"[green]trained[/] {cfg.model.name} on {cfg.task.dataset}: run {result.run_id}")
    print_run_metrics(result.metrics, result.run_id, result.bundle_path)
    if result.info.get("export"):  # registered as challenger: `cityagent models promote` makes it the champion
        console.print(f"export {result.info['export']}", highlight=False, soft_wrap=True)


def evaluate(
    run_id: str = typer.Argument(..., help="An MLflow run id from `cityagent train`, or a unique prefix (≥ 6)."),
    hub: str = typer.Option(
        None, "--hub", help="Evaluate on this hub (a copy, or newer data of the same nodes); default: the run's own."
    ),
) -> None:
    """Re-evaluate a trained run on its task's test split; prints every horizon step."""
    quiet_libraries()
    from cityagent.agent.cli_metrics import meta_facts, print_metrics
    from cityagent.training.evaluate import evaluate_with_meta

    with sigterm_exits("evaluation", "nothing was written"):
        metrics, meta = evaluate_with_meta(run_id, hub=hub)
    leads, units = meta_facts(meta)  # lead times label the rows, as in `train`
    console.print(f"[green]evaluated[/] run {run_id} on its task's test split", soft_wrap=True)
    print_metrics(metrics, leads, units, every_horizon=True)


def tune(
    domain: str = typer.Argument(..., help="traffic, demand or risk."),
    overrides: list[str] = typer.Argument(
        None, help="Config overrides as key=value; a key set here is fixed, not searched (e.g. train.lr=0.001)."
    ),
    config: Path = typer.Option(
        None,
        help="The base YAML config (default: configs/<task>.yaml). The default search space is the learning rate, "
        "weight decay and, where the model has them, its width and dropout; for a tree model, its learning rate, "
        "leaves, leaf size and L2 regularisation (docs/configuration.md, 'Tune search space').",
    ),
    space: Path = typer.Option(
        None,
        help="A YAML search space replacing the default: dotted config key → a list of choices, {low: L, high: H} "
        "(log: true for a log scale; whole-number ends give whole numbers) or {grid_search: [...]}.",
    ),
    search: list[str] = typer.Option(
        None,
        help="One searched key as KEY=SPEC, e.g. 'train.lr={low: 1e-4, high: 1e-2, log: true}' (repeatable; "
        "added to --space's keys, replacing the default space).",
    ),
    samples: int = typer.Option(4, help="Trials to run."),
    hub: str = typer.Option(None, help="Hub location (default: the synthetic city under $CITYAGENT_HOME)."),
    prefix: str = typer.Option(None, help="SQL hubs: the table-name prefix the hub was written with."),
    workers: int = typer.Option(None, help="Ray Train workers per trial; 0 runs each trial in-process."),
    address: str = typer.Option(None, help="Ray cluster address (default: $RAY_ADDRESS or a local Ray)."),
) -> None:
    """Search hyperparameters with Ray Tune (ASHA early stopping; tree models: one fit per trial); logs every
    trial, prints the best one."""
    quiet_libraries()
    from rich.markup import escape

    from cityagent.agent.cli_metrics import print_run_metrics
    from cityagent.training.tune import check_samples
    from cityagent.training.tune import tune as run_tune
    from cityagent.training.tune_space import fixed_keys, parse_search, read_space, resolve_space

    check_samples(samples)  # what the command line got wrong is refused before the first line is printed
    cfg = run_config(domain, config, _overrides(hub, workers, address, overrides or [], prefix), "tune")
    given = {**(read_space(space) if space else {}), **parse_search(search or [])} if space or search else None
    fixed = fixed_keys(overrides or [])
    resolve_space(cfg, given, fixed)
    console.print(f"tuning {cfg.model.name} on {cfg.task.dataset}: {samples} trial(s)", highlight=False)
    say = lambda line: console.print(f"  [yellow]{escape(line)}[/]", highlight=False, soft_wrap=True)  # noqa: E731
    with sigterm_exits("tuning"):
        best = run_tune(cfg, samples=samples, search_space=given, fixed=fixed, say=say)
    if best.info.get("diverged"):  # the best trial's restored model forecasts NaN: recorded as FAILED
        raise TrainingDiverged(best.info["diverged"])
    console.print(
        f"[green]best of {best.info['trials']} trials[/] {cfg.model.name} on {cfg.task.dataset}: run {best.run_id} "
        f"(sweep {best.info['parent_run_id']})",
        soft_wrap=True,
    )
    # as overrides, to train with them again: cityagent train DOMAIN train.lr=0.0003937 ...
    chosen = " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(best.info["best_config"].items())
    )
    console.print(f"  settings: {chosen}", highlight=False, soft_wrap=True)
    print_run_metrics(best.metrics, best.run_id, best.bundle_path)
    if best.info.get("export"):
        console.print(f"  export {best.info['export']}", highlight=False, soft_wrap=True)
