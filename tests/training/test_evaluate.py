"""`evaluate_run` scores a run on the data it was trained on, or refuses: never on a made-up or mismatched city."""

import pytest

from cityagent.errors import CityAgentError
from cityagent.hub.synth import synthesize
from cityagent.training.config import load_config
from cityagent.training.evaluate import evaluate_run
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
