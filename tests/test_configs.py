"""Every YAML in configs/ loads into the typed config, names real models and protocols, so YAML never drifts."""

from pathlib import Path

import pytest

from cityagent.errors import ConfigError
from cityagent.hub.protocols import PROTOCOLS, protocol_params
from cityagent.models.registry import list_models, model_info
from cityagent.training.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DOMAIN_FILES = [CONFIGS / f"{d}.yaml" for d in ("traffic", "demand", "risk")]
RUN_CONFIGS = DOMAIN_FILES + sorted(
    p for sub in ("datasets", "models", "train", "benchmarks") for p in (CONFIGS / sub).glob("*.yaml")
)


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_config_loads_and_names_real_things(path):
    cfg = load_config(path)
    assert cfg.model.name in list_models()
    assert set(cfg.model.params) <= set(model_info(cfg.model.name).params)
    assert cfg.task.protocol in PROTOCOLS
    assert set(cfg.task.params) <= set(protocol_params(cfg.task.protocol))


def test_every_model_has_a_config():
    assert {p.stem for p in (CONFIGS / "models").glob("*.yaml")} == set(list_models())


def test_defaults_merge_in_order_and_overrides_win():
    cfg = load_config(CONFIGS / "traffic.yaml", ["train.max_epochs=2", "model.params.embed_dim=8"])
    assert (cfg.task.dataset, cfg.model.name, cfg.train.workers) == ("synthetic", "stid", 2)
    assert cfg.train.max_epochs == 2 and cfg.model.params["embed_dim"] == 8


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.max_epoch=3", "did you mean 'train.max_epochs'"),
        ("trian.lr=0.1", "did you mean 'train'"),
        ("train.lr=-1", "'train.lr'"),
        ("nonsense", "must look like key=value"),
    ],
)
def test_bad_keys_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CONFIGS / "traffic.yaml", [override])
