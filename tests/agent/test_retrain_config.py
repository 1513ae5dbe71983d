"""Which registered model a retrain makes: the one the agent loop asks for."""

import pytest

from cityagent.agent.agent_config import load_agent_config
from cityagent.agent.retrain import retrain_config
from cityagent.errors import ConfigError
from cityagent.training.task import task_name


def test_a_retrain_registers_the_model_the_loop_serves(tmp_path):
    cfg = load_agent_config(overrides={"hub": str(tmp_path), "loop": {"models": {"traffic": "traffic-pengcheng"}}})
    run = retrain_config("traffic", cfg)
    assert task_name(run.task) == "traffic-pengcheng" and run.task.hub == str(tmp_path)
    # an explicit retrain override still wins
    cfg = cfg.model_copy(
        update={"retrain": cfg.retrain.model_copy(update={"overrides": {"traffic": {"task.dataset": "x"}}})}
    )
    assert task_name(retrain_config("traffic", cfg).task) == "traffic-x"


def test_a_served_name_a_retrain_cannot_register_is_refused(tmp_path):
    # traffic is not retrained here (the shipped config schedules it: loading would refuse the name already)
    cfg = load_agent_config(overrides={"retrain": {"schedule": {}}, "loop": {"models": {"traffic": "speeds"}}})
    with pytest.raises(ConfigError, match=r"loop\.models\.traffic is 'speeds'.*'traffic-<dataset>'"):
        retrain_config("traffic", cfg)
