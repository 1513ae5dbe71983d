"""The serving YAML parses into ServingConfig (so it never drifts from the code), and bad keys say what to fix."""

from pathlib import Path

import pytest

from cityagent.errors import ConfigError
from cityagent.serving.config import ServingConfig, load_serving_config
from cityagent.serving.spec import parse_spec

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_yaml_is_the_defaults():
    cfg = load_serving_config(REPO / "configs" / "serving.yaml")
    assert cfg == ServingConfig()  # every key in the YAML is a field, with the code's default
    assert cfg.host == "127.0.0.1"


def test_overrides_merge_into_nested_sections_and_skip_none(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("port: 9000\nbatching: {max_batch_size: 8}\n")
    cfg = load_serving_config(path, {"port": None, "batching": {"max_queue_size": 3}, "models": ["a@champion"]})
    assert (cfg.port, cfg.batching.max_batch_size, cfg.batching.max_queue_size, cfg.models) == (
        9000,
        8,
        3,
        ["a@champion"],
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prot: 8001\n", "prot: Extra inputs are not permitted; did you mean 'port'\\?"),
        ("batching: {max_batchsize: 8}\n", r"batching\.max_batchsize: .*; did you mean 'batching\.max_batch_size'\?"),
        ("batching: {max_batch_size: 0}\n", "batching.max_batch_size"),
        ("- a\n", "must be a mapping"),
        ("max_message_mb: 5000\n", "max_message_mb: Input should be less than or equal to 2047"),  # gRPC's int32
        ("max_message_mb: 2048\n", "max_message_mb: Input should be less than or equal to 2047"),
        ("max_stream_in_flight: 0\n", "max_stream_in_flight"),
        ("keepalive: {min_ping_interval_s: 0}\n", "keepalive.min_ping_interval_s"),
        ("keepalive: {min_ping_interval: 30}\n", "did you mean 'keepalive.min_ping_interval_s'"),
    ],
)
def test_bad_yaml_is_a_config_error_naming_the_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_serving_config(path)


def test_a_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_serving_config(tmp_path / "nope.yaml")


def test_model_specs(tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"")
    assert parse_spec("traffic-synthetic@champion") == parse_spec("models:/traffic-synthetic@champion")
    spec = parse_spec("traffic-synthetic@champion")
    assert (spec.kind, spec.name, spec.ref, spec.by_alias) == ("registry", "traffic-synthetic", "champion", True)
    assert parse_spec("models:/demand/3").ref == "3" and not parse_spec("models:/demand/3").by_alias
    assert parse_spec(str(onnx)).name == "m"
    assert parse_spec(f"traffic={onnx}").name == "traffic"
    with pytest.raises(ConfigError, match="does not exist"):
        parse_spec(str(tmp_path / "missing.onnx"))
    with pytest.raises(ConfigError, match="neither"):
        parse_spec("just-a-name")
    with pytest.raises(ConfigError, match="version number or an alias"):
        parse_spec("models:/demand/latest")


def test_the_largest_message_limit_starts_a_server(tmp_path):
    """2047 MiB in bytes still fits gRPC's int32 options (2048 MiB raised OverflowError at start-up)."""
    from cityagent.serving.background import ServerThread
    from tests.serving import onnx_models as om

    path = om.save(om.linear_model(), tmp_path / "m.onnx")
    cfg = load_serving_config(
        overrides={"port": 0, "metrics_port": None, "models": [str(path)], "max_message_mb": 2047}
    )
    with ServerThread(cfg) as server:
        assert server.server.store.versions("m") == ["1"]
