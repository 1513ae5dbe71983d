"""`cityagent train | tune`: the config the command line makes (domain, hub path, prefix), refusals that come
before anything starts, and what a run prints."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cityagent.agent.cli import app
from cityagent.agent.cli_train import CONFIG_DIR, _overrides, run_config
from cityagent.errors import ConfigError
from cityagent.training.config import load_config
from tests.sigterm import sigterm_when

BIN = Path(sys.executable).parent


def test_a_config_of_another_domain_is_refused_not_relabelled():
    with pytest.raises(ConfigError, match=r"`cityagent train traffic` was given a demand task by .*demand\.yaml"):
        run_config("traffic", CONFIG_DIR / "demand.yaml", [])
    with pytest.raises(ConfigError, match=r"by the override task\.domain: run `cityagent tune risk`"):
        run_config("traffic", None, ["task.domain=risk"], "tune")
    assert run_config("demand", CONFIG_DIR / "demand.yaml", []).task.domain == "demand"


def test_a_config_silent_on_the_domain_takes_the_one_asked_for(tmp_path):
    small = tmp_path / "small.yaml"
    small.write_text("model: {name: ha}\n")
    assert run_config("risk", small, []).task.domain == "risk"
    with pytest.raises(ConfigError, match=r"unknown task 'trafic'; tasks are: traffic, demand, risk"):
        run_config("trafic", small, [])


def test_a_relative_hub_is_logged_absolute_and_urls_stay_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_config("traffic", None, _overrides("city", None, None, [])).task.hub == str(tmp_path / "city")
    assert load_config(None, {"task.hub": "city"}).task.hub == str(tmp_path / "city")  # the Python route too
    url = "postgresql://postgres@127.0.0.1:5432/test"
    cfg = run_config("traffic", None, _overrides(url, 0, None, [], prefix="city_"))
    assert (cfg.task.hub, cfg.task.hub_prefix, cfg.train.workers) == (url, "city_", 0)
    assert load_config(None, {"task.hub": "memory://hub"}).task.hub == "memory://hub"


@pytest.mark.parametrize("samples", ["0", "-1"])
def test_tune_needs_at_least_one_trial_before_ray_starts(samples):
    result = CliRunner().invoke(app, ["tune", "traffic", "--samples", samples, "--workers", "0"])
    assert isinstance(result.exception, ConfigError)
    assert f"tune samples={samples} must be a whole number ≥ 1" in str(result.exception)


def test_train_with_a_mistyped_hub_path_says_so(tmp_path):
    result = CliRunner().invoke(app, ["train", "traffic", "--hub", str(tmp_path / "nonexist"), "--workers", "0"])
    assert "no hub at" in str(result.exception) and not Path(tmp_path / "nonexist").exists()


def _cityagent(tmp_path, *args: str) -> str:
    """Run the real entry point on a small 5-minute city; stdout and stderr together, as a user sees them."""
    from cityagent.hub.synth import synthesize

    hub = synthesize(tmp_path / "hub", sensors=6, zones=4, days=3, progress=False)
    env = {**os.environ, "CITYAGENT_HOME": str(tmp_path / "home")}
    for key in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "RAY_LOGGER_LEVEL", "MLFLOW_LOGGING_LEVEL"):
        env.pop(key, None)
    cmd = [str(BIN / "cityagent"), *args, "--hub", str(hub), "--workers", "0", "tracking.register_model=false"]
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert done.returncode == 0, done.stdout
    return done.stdout


def test_train_prints_headline_metrics_and_a_few_lead_times_not_library_chatter(tmp_path):
    out = _cityagent(tmp_path, "train", "traffic", "train.max_epochs=1")
    words = " ".join(out.split())
    assert "trained stid on synthetic: run" in words
    assert "test MAE RMSE MAPE %" in words and "15 min (h3)" in words and "1 h (h12)" in words
    assert "all 12 steps" in words and "MAE and RMSE in km/h" in words and "cityagent evaluate" in words
    assert not re.search(r"_h\d+|\bh7\b", out), out  # no line per horizon metric
    run = re.search(r"run ([0-9a-f]{32})", out).group(1)
    env = {**os.environ, "CITYAGENT_HOME": str(tmp_path / "home")}
    env.pop("MLFLOW_TRACKING_URI", None)
    again = subprocess.run([str(BIN / "cityagent"), "evaluate", run[:8]], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    rows = " ".join(again.stdout.split())
    assert "5 min (h1)" in rows and "35 min (h7)" in rows and "1 h (h12)" in rows and "MAE and RMSE in km/h" in rows
    for chatter in ("GPU available", "TPU available", "`Trainer.fit` stopped", "Creating initial MLflow", "💡"):
        assert chatter not in out, out


def test_tune_prints_a_line_per_trial_and_none_of_ray_tunes_tables(tmp_path):
    out = _cityagent(tmp_path, "tune", "traffic", "--samples", "2", "train.max_epochs=1")
    words = " ".join(out.split())
    assert "tuning stid on synthetic: 2 trial(s)" in words
    assert "trial 1/2 started:" in words and "trial 2/2 finished after 1 of 1 epochs: best val_loss" in words
    assert "best of 2 trials" in words and "settings: " in words and "train.lr=" in words
    assert "all 12 steps" in words and not re.search(r"_h\d+", out), out
    for chatter in ("Configuration for experiment", "View detailed results", "Trial status", "snapshotting",
                    "Started a local Ray instance", "Wrote the latest version", "GPU available"):  # fmt: skip
        assert chatter not in out, out


def test_a_diverged_run_exits_2_with_one_line_and_is_recorded_failed(tmp_path):
    from mlflow import MlflowClient

    from cityagent.hub.synth import synthesize

    hub = synthesize(tmp_path / "hub", sensors=6, zones=4, days=3, progress=False)
    env = {**os.environ, "CITYAGENT_HOME": str(tmp_path / "home")}
    for key in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        env.pop(key, None)
    cmd = [str(BIN / "cityagent"), "train", "traffic", "--hub", str(hub), "--workers", "0"]
    cmd += ["train.max_epochs=1", "train.lr=1e12"]
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    out = " ".join(done.stdout.split())
    assert done.returncode == 2, done.stdout
    assert "training diverged: the model's outputs are NaN/inf (validation loss nan" in out, done.stdout
    assert "lower train.lr (now 1e+12) or check the data" in out, done.stdout
    assert "scalers" not in out and "trained stid" not in out and "Traceback" not in out, done.stdout
    run_id = re.search(r"run ([0-9a-f]{32}) is marked FAILED", out).group(1)
    run = MlflowClient(f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}").get_run(run_id)
    assert run.info.status == "FAILED" and "training diverged" in run.data.tags["cityagent.diverged"]
    assert not MlflowClient(f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}").search_registered_models()


def test_sigterm_ends_training_with_143_and_one_line_naming_the_failed_run(tmp_path):
    """Lightning answers SIGTERM with a bare SystemExit, so `train` exited 0 and cron, CI or a Job saw success."""
    from mlflow import MlflowClient

    from cityagent.hub.synth import synthesize

    hub = synthesize(tmp_path / "hub", sensors=6, zones=4, days=3, progress=False)
    env = {**os.environ, "CITYAGENT_HOME": str(tmp_path / "home")}
    for key in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        env.pop(key, None)
    cmd = [str(BIN / "cityagent"), "train", "traffic", "--hub", str(hub), "--workers", "0"]
    cmd += ["train.max_epochs=1000", "train.patience=1000"]
    checkpoints = tmp_path / "home" / "checkpoints"
    code, out = sigterm_when(cmd, lambda: any(checkpoints.glob("*/*.ckpt")), 300, env)  # an epoch is done: it trains
    assert code == 143, out
    words = " ".join(out.split())
    found = re.search(r"training interrupted by SIGTERM after [\d.]+ s; run ([0-9a-f]{32}) marked FAILED; nothing was "
                      r"registered", words)  # fmt: skip
    assert found and "Traceback" not in out and "trained stid" not in out, out
    client = MlflowClient(f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}")
    assert client.get_run(found.group(1)).info.status == "FAILED"
    assert not client.search_registered_models()


def test_sigterm_exits_answers_lightnings_and_rays_exits_and_lets_every_other_error_through(capsys):
    import typer

    from cityagent.agent.cli_train import sigterm_exits

    class SIGTERMException(SystemExit):  # Lightning's, by name (is_sigterm does not import Lightning)
        pass

    for error in (SIGTERMException(), SystemExit(15)):  # Lightning's bare exit; ray.init's sys.exit(SIGTERM)
        with pytest.raises(typer.Exit) as stop, sigterm_exits("tuning"):
            raise error
        assert stop.value.exit_code == 143
    err = " ".join(capsys.readouterr().err.split())
    assert "tuning interrupted by SIGTERM after 0.0 s; no MLflow run was open" in err, err
    for other in (SystemExit(0), ValueError("x"), ConfigError("y")):
        with pytest.raises(type(other)), sigterm_exits("training"):
            raise other
