"""`cityagent train | tune`: the config the command line makes (domain, hub path, prefix), and refusals that come
before anything starts."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cityagent.agent.cli import app
from cityagent.agent.cli_train import CONFIG_DIR, _overrides, run_config
from cityagent.errors import ConfigError
from cityagent.training.config import load_config


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
