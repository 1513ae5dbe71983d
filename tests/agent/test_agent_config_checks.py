"""What `cityagent retrain --schedule` refuses at start, the agent config refuses when it loads: a mistyped
``retrain.overrides`` key or task, an unknown timezone, a serving address that is not host:port."""

import subprocess
import sys
import time

import pytest

from cityagent.agent.agent_config import load_agent_config
from cityagent.errors import ConfigError


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"retrain": {"overrides": {"traffic": {"train.max_epoch": 3}}}},
            "retrain.overrides.traffic.train.max_epoch does not exist; did you mean 'train.max_epochs'?",
        ),
        (
            {"retrain": {"overrides": {"demand": {"train.max_epochs": "abc"}}}},
            "retrain.overrides.demand.train.max_epochs: Input should be a valid integer",
        ),
        (
            {"retrain": {"overrides": {"risk": {"model.name": "gbrtt"}}}},
            "retrain.overrides.risk.model.name: unknown model 'gbrtt'. Did you mean 'gbrt'?",
        ),
        (  # a model parameter name: checked at load too (the registry is imported only for such overrides)
            {"retrain": {"overrides": {"traffic": {"model.params.embed_dimm": 32}}}},
            "retrain.overrides.traffic: model 'stid' has no parameter 'embed_dimm'. Did you mean 'embed_dim'?",
        ),
        (
            {"retrain": {"overrides": {"risk": {"model.name": "risk_gbrt", "model.params": {"hidden": 3}}}}},
            "retrain.overrides.risk: model 'risk_gbrt' has no parameter 'hidden'.",
        ),
        (
            {"retrain": {"overrides": {"trafic": {"train.max_epochs": 3}}}},
            "retrain.overrides: an override names task 'trafic' (did you mean 'traffic'?)",
        ),
        (
            {"retrain": {"schedule": {"trafic": "0 3 * * *"}}},
            "retrain.schedule: the schedule names task 'trafic' (did you mean 'traffic'?)",
        ),
        (
            {"retrain": {"timezone": "Asia/Shangai"}},
            "retrain.timezone: 'Asia/Shangai' is not an IANA zone (did you mean 'Asia/Shanghai'?)",
        ),
        ({"serving": {"address": "nohostport"}}, "serving.address: 'nohostport' is not host:port"),
        ({"serving": {"address": "h:99999"}}, "serving.address: port 99999 of 'h:99999' is not in 1..6"),
        ({"serving": {"address": ":8001"}}, "serving.address: ':8001' is not host:port"),
        # a scheduled task's retrain must register the model the loop serves
        ({"loop": {"models": {"traffic": "speeds"}}}, "loop.models.traffic is 'speeds', but a retrain registers"),
    ],
)
def test_a_retrain_or_serving_mistake_is_refused_at_load(overrides, message):
    with pytest.raises(ConfigError) as e:
        load_agent_config(None, overrides)
    text = str(e.value)
    assert "\n" not in text and text.startswith("agent config ") and message in text, text


def test_good_values_still_load():
    cfg = load_agent_config(None, {"serving": {"address": "[::1]:8001"}, "retrain": {"timezone": "UTC"}})
    assert cfg.serving.address == "[::1]:8001"
    cfg = load_agent_config(None, {"retrain": {"overrides": {"traffic": {"train.max_epochs": 3, "model.params": {}}}}})
    assert cfg.retrain.overrides["traffic"]["train.max_epochs"] == 3


def test_the_yaml_file_is_named_and_loading_stays_light(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text("retrain:\n  overrides:\n    traffic: {train.max_epoch: 3}\n")
    with pytest.raises(ConfigError, match=rf"^agent config {path}: retrain\.overrides\.traffic\.train\.max_epoch "):
        load_agent_config(path)
    code = (
        "import sys, time; t = time.time(); from cityagent.agent.agent_config import load_agent_config as l; l(); "
        "print(time.time() - t, [m for m in ('ray', 'mlflow', 'torch', 'lightning') if m in sys.modules])"
    )
    start = time.time()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert out[1].strip() == "[]", out  # neither Ray, MLflow nor torch is imported to check the overrides
    assert float(out[0]) < 5 and time.time() - start < 30
