"""serving.yaml's ort.providers: a provider ONNX Runtime does not know, or this machine's build lacks, fails at load."""

import onnxruntime as ort
import pytest

from cityagent.errors import ConfigError
from cityagent.serving.config import load_serving_config


def providers(names: list[str], tmp_path) -> list[str]:
    path = tmp_path / "serving.yaml"
    path.write_text(f"ort:\n  providers: [{', '.join(names)}]\n")
    return load_serving_config(path).ort.providers


def test_the_available_providers_load(tmp_path):
    assert providers(["CPUExecutionProvider"], tmp_path) == ["CPUExecutionProvider"]
    assert providers(ort.get_available_providers(), tmp_path) == ort.get_available_providers()


def test_an_unknown_provider_is_refused_with_the_nearest_and_this_machines_list(tmp_path):
    with pytest.raises(ConfigError, match=r"ort\.providers: .*'FooProvider' is no ONNX Runtime provider; this") as e:
        providers(["FooProvider"], tmp_path)
    assert "CPUExecutionProvider" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"'CPUProvider' is no ONNX Runtime provider; did you mean 'CPUExecution"):
        providers(["CPUProvider"], tmp_path)
    with pytest.raises(ConfigError, match=r"ort\.providers: .*list at least one provider"):
        providers([], tmp_path)


def test_a_provider_this_build_lacks_is_refused_listing_the_available_ones(tmp_path):
    missing = [p for p in ort.get_all_providers() if p not in ort.get_available_providers()]
    if not missing:
        pytest.skip("this onnxruntime build has every provider")
    with pytest.raises(ConfigError, match=rf"'{missing[0]}' is not in this machine's onnxruntime build, which has"):
        providers([missing[0], "CPUExecutionProvider"], tmp_path)
