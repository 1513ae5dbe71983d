"""`cityagent train | evaluate | tune`: learn models from the hub, on Ray or in-process."""

from pathlib import Path

import typer

from cityagent.agent.console import console
from cityagent.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
DOMAINS = ("traffic", "demand", "risk")


def default_config(domain: str) -> Path:
    """``configs/<domain>.yaml``: the domain's default task and model."""
    if domain not in DOMAINS:
        raise ConfigError(f"unknown task {domain!r}; tasks are: {', '.join(DOMAINS)}")
    return CONFIG_DIR / f"{domain}.yaml"


def _overrides(domain: str, hub: str | None, workers: int | None, address: str | None, rest: list[str]) -> list[str]:
    out = [f"task.domain={domain}"]
    if hub is not None:
        out.append(f"task.hub={hub}")
    if workers is not None:
        out.append(f"train.workers={workers}")
    if address is not None:
        out.append(f"train.address={address}")
    return out + list(rest)


def train(
    domain: str = typer.Argument(..., help="traffic, demand or risk."),
    overrides: list[str] = typer.Argument(None, help="Config overrides as key=value, e.g. model.name=tgcn."),
    config: Path = typer.Option(None, help="A YAML config (default: configs/<task>.yaml)."),
    hub: str = typer.Option(None, help="Hub location (default: the synthetic city under $CITYAGENT_HOME)."),
    workers: int = typer.Option(None, help="Ray Train workers; 0 trains in-process."),
    address: str = typer.Option(None, help="Ray cluster address (default: $RAY_ADDRESS or a local Ray)."),
) -> None:
    """Train, evaluate and track one model; prints the metrics and the MLflow run id."""
    from cityagent.training.config import load_config
    from cityagent.training.fit import fit

    cfg = load_config(config or default_config(domain), _overrides(domain, hub, workers, address, overrides or []))
    result = fit(cfg)
    console.print(f"[green]trained[/] {cfg.model.name} on {cfg.task.dataset}: run {result.run_id}")
    for key, value in sorted(result.metrics.items()):
        console.print(f"  {key:>28} {value:.4f}")


def evaluate(run_id: str = typer.Argument(..., help="An MLflow run id from `cityagent train`.")) -> None:
    """Re-evaluate a trained run on its task's test split."""
    from cityagent.training.evaluate import evaluate_run

    metrics = evaluate_run(run_id)
    for key, value in sorted(metrics.items()):
        console.print(f"  {key:>28} {value:.4f}")


def tune(
    domain: str = typer.Argument(..., help="traffic, demand or risk."),
    overrides: list[str] = typer.Argument(None, help="Config overrides as key=value."),
    config: Path = typer.Option(
        None,
        help="The base YAML config (default: configs/<task>.yaml); the search space is the learning rate, "
        "weight decay and, where the model has them, its width and dropout (training/tune.py); for a tree model, "
        "its learning rate, leaves, leaf size and L2 regularisation (training/tune_classical.py).",
    ),
    samples: int = typer.Option(4, help="Trials to run."),
    hub: str = typer.Option(None, help="Hub location (default: the synthetic city under $CITYAGENT_HOME)."),
    workers: int = typer.Option(None, help="Ray Train workers per trial; 0 runs each trial in-process."),
    address: str = typer.Option(None, help="Ray cluster address (default: $RAY_ADDRESS or a local Ray)."),
) -> None:
    """Search hyperparameters with Ray Tune (ASHA early stopping; tree models: one fit per trial); logs every
    trial, prints the best one."""
    from cityagent.training.config import load_config
    from cityagent.training.tune import tune as run_tune

    cfg = load_config(config or default_config(domain), _overrides(domain, hub, workers, address, overrides or []))
    best = run_tune(cfg, samples=samples)
    console.print(
        f"[green]best of {best.info['trials']} trials[/] {cfg.model.name} on {cfg.task.dataset}: run {best.run_id} "
        f"(sweep {best.info['parent_run_id']})"
    )
    for key, value in sorted(best.info["best_config"].items()):
        console.print(f"  {key:>28} {value:.4g}" if isinstance(value, float) else f"  {key:>28} {value}")
    for key, value in sorted(best.metrics.items()):
        console.print(f"  {key:>28} {value:.4f}")
    if best.info.get("export"):
        console.print(f"  {'export':>28} {best.info['export']}")
