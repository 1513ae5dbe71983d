"""check_buildable, before an MLflow run opens: scikit-learn's param checks, and a model of another domain."""

import logging

import pytest

from cityagent.errors import ConfigError
from cityagent.training.build import check_buildable
from cityagent.training.task import load_task


@pytest.fixture(scope="module")
def tasks(tiny_hub):
    from cityagent.training.config import load_config

    def task(domain: str):
        window = {"input_len": 6, "horizon": 3}
        cfg = load_config(None, {"task.hub": str(tiny_hub), "task.domain": domain, "task.params": window})
        return load_task(cfg.task)[0]

    return {d: task(d) for d in ("traffic", "risk")}


def model(name: str, **params):
    from cityagent.training.config import ModelConfig

    return ModelConfig(name=name, params=params)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"max_iter": -5}, r"'max_iter' parameter of HistGradientBoostingRegressor must be an int in the range \[1"),
        ({"max_leaf_nodes": 1}, r"'max_leaf_nodes' parameter .* range \[2, inf\) or None\. Got 1 instead;"),
        ({"learning_rate": "x"}, r"'learning_rate' parameter .* Got 'x' instead;"),
    ],
)
def test_a_bad_classical_param_is_a_one_line_config_error(tasks, params, named):
    task = tasks["traffic"]
    with pytest.raises(ConfigError, match=rf"model 'gbrt' cannot be built from model\.params .*{named}") as e:
        check_buildable(task, model("gbrt", **params))
    assert "\n" not in str(e.value)


def test_a_model_of_another_domain_warns_listing_the_task_domains_models(tasks, caplog):
    task = tasks["risk"]
    with caplog.at_level(logging.WARNING, logger="cityagent.training.build"):
        check_buildable(task, model("gru", hidden_size=8), domain="risk")
    assert "model 'gru' is registered for traffic, not risk; risk models: " in caplog.text
    assert "risk_conv" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cityagent.training.build"):
        check_buildable(task, model("stid"), domain="risk")  # any domain: no warning
        check_buildable(task, model("risk_ha"), domain="risk")
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("cityagent")]  # not other libraries' GC


def test_a_model_the_task_cannot_feed_says_which_models_the_domain_has(tasks):
    task = tasks["traffic"]  # sensors: no grid of cells
    with pytest.raises(ConfigError, match=r"risk_conv needs the task's grid .*\(model 'risk_conv' is registered for"):
        check_buildable(task, model("risk_conv"), domain="traffic")
