"""The name → builder registry: listing, info, and errors that say what to do."""

import re
from pathlib import Path

import pytest
import torch
import yaml

from cityagent.errors import ConfigError
from cityagent.models import build_model, list_models, model_info, registry
from tests.models.inputs import common_params

EXPECTED = {
    "traffic": {"ha", "gru", "tgcn", "gwnet"},
    "demand": {"hm", "st_resnet", "st_gcn_demand", "gbrt_demand"},
    "risk": {"risk_ha", "risk_conv", "risk_gbrt"},
}
ANY = {"gbrt", "last_value", "stid"}  # listed under every domain
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_lists_every_model_by_domain_with_the_domain_agnostic_ones_in_all():
    for domain, names in EXPECTED.items():
        assert set(list_models(domain)) == names | ANY
    assert list_models() == sorted(set().union(*EXPECTED.values()) | ANY)
    with pytest.raises(ConfigError, match="unknown domain 'weather'"):
        list_models("weather")


def test_model_info_describes_builder_params_and_kind():
    info = model_info("gru")
    assert (info.domain, info.kind) == ("traffic", "deep")
    assert info.params["hidden_size"] == 64 and "num_nodes" not in info.params
    assert model_info("ha").kind == "baseline" and model_info("gbrt").kind == "classical"
    for name in list_models():
        assert model_info(name).summary, f"{name} needs a docstring"


def test_unknown_name_lists_valid_names_and_suggests_nearest():
    with pytest.raises(ConfigError) as err:
        build_model("tgnc", **common_params())
    msg = str(err.value)
    assert "'tgnc'" in msg and "Did you mean 'tgcn'" in msg and "stid" in msg and "gwnet" in msg


def test_a_name_in_the_wrong_case_suggests_the_registered_one():
    with pytest.raises(ConfigError, match=r"unknown model 'STID'\. Did you mean 'stid'\?"):
        model_info("STID")
    with pytest.raises(ConfigError, match=r"unknown model 'Gbrt_Demand'\. Did you mean 'gbrt_demand'\?"):
        build_model("Gbrt_Demand", **common_params())


def test_unknown_param_names_nearest_valid_param():
    with pytest.raises(ConfigError, match=r"no parameter 'hiden_size'.*Did you mean 'hidden_size'"):
        build_model("gru", **common_params(), hiden_size=8)
    with pytest.raises(ConfigError, match=r"no parameter 'zzz'"):
        build_model("stid", **common_params(), zzz=1)
    # a config of another model with only model.name changed: say so, and how to reset the params
    with pytest.raises(ConfigError, match=r"parameter of '\w+'.*: when changing model.name.*model.params=\{\}"):
        build_model("gbrt_demand", **common_params(), hidden_size=8)


def test_params_of_another_model_name_every_model_that_has_them():
    # `cityagent train traffic model.name=gru`: configs/traffic.yaml's params are stid's, not gbrt_demand's
    stid = yaml.safe_load((CONFIGS / "models" / "stid.yaml").read_text())["model"]["params"]
    with pytest.raises(ConfigError) as err:
        build_model("gru", **common_params(), **stid)
    msg = str(err.value)
    assert "no parameters 'steps_per_day', 'embed_dim'" in msg and "They are parameters of 'stid': " in msg
    assert "gbrt_demand" not in msg and "model.params={} gives the defaults of 'gru'" in msg
    # one param that several models have: all of them, not the alphabetically first
    with pytest.raises(ConfigError, match=r"It is a parameter of 'gbrt_demand', 'stid': when changing model.name"):
        build_model("gru", **common_params(), steps_per_day=288)


def test_common_params_a_builder_does_not_use_are_ignored():
    model = build_model("last_value", **common_params())  # adjacency, grid, num_nodes unused
    assert model(torch.zeros(2, 12, 9, 9)).shape == (2, 3, 9)


def test_missing_and_invalid_common_params_are_config_errors():
    with pytest.raises(ConfigError, match="needs in_features"):
        build_model("gru", horizon=3)
    bad = [
        dict(target_channel=9),
        dict(horizon=0),
        dict(adjacency=[[1.0, 0.0]]),
        dict(grid=(2, 3)),
        dict(quantiles=(0.9, 0.1)),
        dict(quantiles=(0.0, 0.5)),
    ]
    for override in bad:
        with pytest.raises(ConfigError):
            build_model("stid", **common_params(**override))


def test_models_that_need_a_graph_or_grid_say_so():
    with pytest.raises(ConfigError, match="tgcn needs the task's adjacency"):
        build_model("tgcn", **common_params(adjacency=None))
    for name in ("st_resnet", "risk_conv"):
        with pytest.raises(ConfigError, match="needs the task's grid"):
            build_model(name, **common_params(grid=None))
    with pytest.raises(ConfigError, match="calendar"):
        build_model("stid", **common_params(in_features=2))


def test_quantiles_are_refused_by_builders_without_them(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register("point_only", domain="traffic", kind="baseline")(lambda horizon: torch.nn.Identity())
    assert isinstance(build_model("point_only", **common_params()), torch.nn.Identity)
    with pytest.raises(ConfigError, match="cannot predict quantiles"):
        build_model("point_only", **common_params(quantiles=(0.1, 0.5, 0.9)))
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("point_only", domain="traffic")(lambda horizon: None)


def test_documented_model_name_overrides_give_params_the_model_takes():
    # a `cityagent train DOMAIN ... model.name=X` in the docs must not keep the config's params of another model
    from cityagent.training.config import load_config

    root = CONFIGS.parent
    commands = [
        m.group(1).split()
        for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]
        for m in re.finditer(r"`cityagent train ([^`]*model\.name=[^`]*)`", page.read_text())
    ]
    assert commands, "the docs show no `cityagent train ... model.name=...` example to check"
    for domain, *args in commands:
        config = args[args.index("--config") + 1] if "--config" in args else f"configs/{domain}.yaml"
        cfg = load_config(root / config, [a for a in args if "=" in a])
        extra = set(cfg.model.params) - set(model_info(cfg.model.name).params)
        assert not extra, f"`cityagent train {domain} {' '.join(args)}` passes {cfg.model.name} params {extra}"
