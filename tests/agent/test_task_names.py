"""A mistyped task name (`cityagent train trafic`) gets a did-you-mean, as mistyped models and protocols do."""

import pytest

from cityagent.agent.cli_train import default_config
from cityagent.agent.retrain import retrain_config
from cityagent.errors import ConfigError


@pytest.mark.parametrize("typo", ["trafic", "Traffic", "trafffic"])
def test_a_mistyped_task_suggests_the_nearest(typo):
    with pytest.raises(ConfigError, match=r"unknown task .*; tasks are: traffic, demand, risk; did you mean 'traffic'"):
        default_config(typo)


def test_a_task_near_nothing_only_lists_the_tasks():
    with pytest.raises(ConfigError, match=r"unknown task 'weather'; tasks are: traffic, demand, risk$"):
        default_config("weather")


def test_retrain_suggests_the_nearest_task_too():
    with pytest.raises(ConfigError, match=r"task 'demnd' has no training config .*; did you mean 'demand'\?"):
        retrain_config("demnd")
