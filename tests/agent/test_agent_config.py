"""A typo in the agent YAML names the key it meant, like a typo in a run config does."""

import pytest

from cityagent.agent.agent_config import load_agent_config
from cityagent.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "retrain:\n  overides: {}\n",
            "retrain.overides: Extra inputs are not permitted; did you mean 'retrain.overrides'?",
        ),
        ("mqtt:\n  batchsize: 50\n", "mqtt.batchsize: Extra inputs are not permitted; did you mean 'mqtt.batch'?"),
        ("lop:\n  interval: 5min\n", "lop: Extra inputs are not permitted; did you mean 'loop'?"),
        ("zzzzz: 1\n", "zzzzz: Extra inputs are not permitted; valid keys: hub, mqtt, drift, retrain"),
        ("mqtt:\n  batch: 0\n", "mqtt.batch: Input should be greater than or equal to 1; fix that key"),
        (
            "retrain:\n  keep_versions: 0\n",
            "retrain.keep_versions: Input should be greater than or equal to 1; fix that key",
        ),
    ],
)
def test_a_bad_key_names_the_nearest_valid_one(tmp_path, text, message):
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_agent_config(path)
    assert str(e.value).startswith(f"agent config {path}: {message}")
