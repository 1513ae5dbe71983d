"""The gate config is checked at load: a metric the gate cannot compare, and one-line errors with the nearest key."""

import pytest

from cityagent.errors import ConfigError
from cityagent.training.gate import load_gate_config


@pytest.mark.parametrize("metric", ["mae", "rmse", "mape"])
def test_every_metric_the_gate_compares_loads(tmp_path, metric):
    path = tmp_path / "gate.yaml"
    path.write_text(f"primary_metric: {metric}\n")
    assert load_gate_config(path).primary_metric == metric


@pytest.mark.parametrize("metric", ["MAE", "r2", "accuracy"])
def test_a_metric_evaluate_onnx_does_not_score_is_refused(tmp_path, metric):
    path = tmp_path / "gate.yaml"
    path.write_text(f"primary_metric: {metric}\n")
    with pytest.raises(ConfigError, match=r"primary_metric: .*'mae', 'rmse' or 'mape'") as e:
        load_gate_config(path)
    assert "\n" not in str(e.value)


def test_an_unknown_key_is_one_line_naming_the_nearest(tmp_path):
    path = tmp_path / "gate.yaml"
    path.write_text("min_improvment: 0.1\n")
    with pytest.raises(ConfigError, match=r"min_improvment: .*did you mean 'min_improvement'\?") as e:
        load_gate_config(path)
    assert "\n" not in str(e.value) and "errors.pydantic.dev" not in str(e.value)


@pytest.mark.parametrize("text, match", [("- mae\n", "must be a mapping"), ("min_improvement: [\n", "not valid YAML")])
def test_a_file_that_is_not_a_mapping_is_one_line(tmp_path, text, match):
    path = tmp_path / "gate.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_gate_config(path)
