"""`cityagent demo`: the main job on the embedded synthetic city, narrated as it goes."""

from pathlib import Path

from cityagent.agent.console import console
from cityagent.errors import HubError
from cityagent.home import home_dir


def run_demo(
    out: str | None = None, sensors: int = 64, zones: int = 16, days: int = 14, seed: int = 0
) -> Path:
    """Synthesise a small city hub under ``$CITYAGENT_HOME`` and validate it.

    Returns:
        The hub directory.
    """
    from cityagent.agent.cli_hub import print_report
    from cityagent.hub import read_hub
    from cityagent.hub.synth import synthesize
    from cityagent.hub.validate import validate_hub

    path = Path(out) if out else home_dir() / "hub"
    console.rule("[bold]cityagent demo[/]")
    console.print(f"1/2 synthesising a city: {sensors} sensors, {zones} zones, {days} days → {path}")
    synthesize(path, sensors=sensors, zones=zones, days=days, seed=seed)
    console.print("2/2 validating the hub against the table contracts")
    report = validate_hub(read_hub(path))
    print_report(report, str(path))
    if not report.ok:
        raise HubError(f"the synthetic hub at {path} failed validation; see the report above")
    console.print(f"[green]done[/]: hub at {path}. Next: `cityagent hub validate {path}`")
    return path
