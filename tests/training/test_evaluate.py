"""`evaluate_run` scores a run on the data it was trained on, or refuses: never on a made-up or mismatched city."""

import os
import tempfile
from pathlib import Path

import pytest

from cityagent.downloads import PROGRESS_VAR
from cityagent.errors import CityAgentError
from cityagent.hub.io import read_hub, write_hub
from cityagent.hub.synth import synthesize
from cityagent.training.config import load_config
from cityagent.training.evaluate import evaluate_run, load_run
from cityagent.training.fit import fit

pytestmark = pytest.mark.usefixtures("shared_mlflow_store")
QUICK = {"model.name": "ha", "model.params": {}, "train.workers": 0, "tracking.register_model": False}


def test_a_run_on_the_default_city_is_evaluated_on_that_city_from_another_home(tmp_path, monkeypatch):
    first = tmp_path / "first"
    monkeypatch.setenv("CITYAGENT_HOME", str(first))
    result = fit(load_config(None, QUICK))  # task.hub: null, the city synthesised under the home
    monkeypatch.setenv("CITYAGENT_HOME", str(tmp_path / "second"))  # a colleague's machine, the same team store
    assert evaluate_run(result.run_id[:8]) == pytest.approx(result.metrics, rel=1e-5, nan_ok=True)
    assert not list((tmp_path / "second").glob("evaluate-*"))  # the downloaded model is not left behind
    (first / "hub" / "hub.json").unlink()  # the city is gone: refused, and nothing is synthesised in its place
    with pytest.raises(CityAgentError, match=r"trained on the synthetic city at .*first/hub, which is not here.*--hub"):
        evaluate_run(result.run_id)
    assert not (tmp_path / "second" / "hub").exists()


def test_a_hub_with_other_sensors_is_refused_naming_them(tiny_cfg, tmp_path):
    result = fit(tiny_cfg(**{"model.name": "ha", "model.params": {}}))
    other = synthesize(tmp_path / "other", sensors=4, zones=4, days=7, step="1h", seed=1, progress=False)
    with pytest.raises(CityAgentError, match=r"takes another input than the hub .*other gives \(nodes 6 instead of 4"):
        evaluate_run(result.run_id, hub=str(other))


def test_a_hub_with_another_step_is_refused_naming_both_steps(tiny_cfg, tmp_path):
    result = fit(tiny_cfg(**{"model.name": "ha", "model.params": {}}))  # the tiny hub's step: 1h
    other = synthesize(tmp_path / "other", sensors=6, zones=4, days=7, step="30min", seed=1, progress=False)
    with pytest.raises(CityAgentError, match=r"\(model step 1h, hub step 30min, model first\).*--hub DIR"):
        evaluate_run(result.run_id, hub=str(other))


def test_a_hub_of_another_city_is_refused_without_training_advice(tiny_cfg, tiny_hub, tmp_path):
    result = fit(tiny_cfg(**{"model.name": "ha", "model.params": {}}))
    city = read_hub(tiny_hub)
    city.meta.name, city.meta.source = "mycity", "own tables"
    mine = write_hub(city, tmp_path / "mycity")
    with pytest.raises(CityAgentError) as e:
        evaluate_run(result.run_id, hub=str(mine))
    assert str(e.value).startswith(f"run {result.run_id} was trained on 'synthetic', but the hub {mine} holds 'mycity'")
    assert "task.dataset" not in str(e.value) and "hub=DIR" in str(e.value)  # evaluate_run has no task.dataset


def test_load_run_leaves_no_folder_per_call_and_prints_no_progress_bars(tiny_cfg, tmp_path, monkeypatch, capfd):
    result = fit(tiny_cfg(**{"model.name": "ha", "model.params": {}}))
    monkeypatch.delenv(PROGRESS_VAR, raising=False)  # a user's notebook: MLflow would draw its bars
    before = set(Path(tempfile.gettempdir()).glob("cityagent-eval-*"))
    capfd.readouterr()
    _, _, folder = load_run(result.run_id)
    _, _, again = load_run(result.run_id[:8])
    assert again == folder and folder.parent == tmp_path / "home" / "downloads" / result.run_id
    assert set(Path(tempfile.gettempdir()).glob("cityagent-eval-*")) == before
    assert "Downloading artifacts" not in capfd.readouterr().err
    assert PROGRESS_VAR not in os.environ  # the user's environment is as it was
    monkeypatch.setenv(PROGRESS_VAR, "true")  # a user who asked for the bars keeps them
    load_run(result.run_id)
    assert os.environ[PROGRESS_VAR] == "true"
