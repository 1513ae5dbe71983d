"""`cityagent demo` end to end: a fresh home ends with printed decisions from served champions."""

import pytest
from typer.testing import CliRunner

from cityagent.agent.cli import app
from cityagent.home import home_dir
from cityagent.hub import read_hub
from cityagent.training.registry import list_versions

TASKS = {"traffic-synthetic", "demand-synthetic", "risk-synthetic"}
# what Lightning, Ray and MLflow would print around the demo's own step lines
CHATTER = ("GPU available", "TPU available", "`Trainer.fit` stopped", "💡", "Started a local Ray instance",
           "Token authentication", "Creating initial MLflow")  # fmt: skip


def run_demo_cli(monkeypatch, tmp_path, *args: str):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}")  # restored afterwards
    result = CliRunner().invoke(app, ["demo", *args], terminal_width=200)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # rich wraps at the terminal width: compare words, not lines


def check_outcome(output: str) -> None:
    assert "decisions this cycle" in output and "where to look next" in output
    assert not [c for c in CHATTER if c in output], output
    assert f"mlflow ui --backend-store-uri sqlite:///{home_dir() / 'mlflow.db'}" in output
    champions = {r.name for r in list_versions() if "champion" in r.aliases}
    assert champions == TASKS
    decisions = read_hub(home_dir() / "hub").table("decisions")
    assert set(decisions["model"]) <= TASKS and "risk_hotspot" in set(decisions["kind"])
    assert set(decisions["model_version"]) == {"1"}
    for kind in set(decisions["kind"]):
        assert kind in output  # every kind written is printed


def test_quick_demo_in_process(monkeypatch, tmp_path):
    output = run_demo_cli(monkeypatch, tmp_path, "--workers", "0", "--epochs", "1", "--sensors", "8", "--zones", "4")
    check_outcome(output)
    assert "in-process" in output


@pytest.mark.slow
def test_full_demo_on_local_ray(monkeypatch, tmp_path):
    output = run_demo_cli(monkeypatch, tmp_path)
    check_outcome(output)
    assert "one local Ray, 2 workers each" in output


def test_demo_refuses_to_replace_a_hub_it_did_not_synthesise(tmp_path):
    from cityagent.hub.synth import synthesize

    imported = synthesize(tmp_path / "city", sensors=4, zones=4, days=1, progress=False)
    manifest = imported / "hub.json"
    manifest.write_text(manifest.read_text().replace('"cityagent synth seed=0"', '"tgcn-csv import"'))
    before = manifest.read_text()
    result = CliRunner().invoke(app, ["demo", "--out", str(imported), "--workers", "0"])
    assert result.exit_code != 0 and "not a synthetic city; the demo would replace it" in str(result.exception)
    assert manifest.read_text() == before  # untouched


def test_demo_tracks_into_its_own_home_not_a_configured_team_store(monkeypatch, tmp_path):
    team = tmp_path / "team.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{team}")
    result = CliRunner().invoke(app, ["demo", "--workers", "0", "--epochs", "1", "--sensors", "8", "--zones", "4"])
    assert result.exit_code == 0, result.output
    assert not team.exists()  # nothing registered or promoted in the team's registry
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home_dir() / 'mlflow.db'}")
    check_outcome(" ".join(result.output.split()))
