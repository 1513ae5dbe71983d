"""Model params that would build a broken or silently different model are refused at build time, in one line."""

import pytest

from cityagent.errors import ConfigError
from cityagent.models import build_model, model_info
from cityagent.models.registry import domain_note
from tests.models.inputs import common_params, make_x
from tests.models.test_risk_gbrt import params as risk_params

BAD_DEEP = [
    ("gwnet", {"blocks": 0}, r"gwnet model\.params\.blocks must be an integer ≥ 1, got 0"),
    ("gwnet", {"layers_per_block": -1}, r"gwnet model\.params\.layers_per_block must be an integer ≥ 1, got -1"),
    ("gwnet", {"blocks": 1, "layers_per_block": 1}, r"gwnet needs blocks × layers_per_block ≥ 2"),
    ("gwnet", {"kernel_size": 1}, r"gwnet model\.params\.kernel_size must be an integer ≥ 2 \(at 1"),
    ("gwnet", {"residual_channels": 0}, r"model\.params\.residual_channels must be an integer ≥ 1"),
    ("gwnet", {"order": 0}, r"model\.params\.order must be an integer ≥ 1"),
    ("gwnet", {"adaptive": "yes"}, r"gwnet model\.params\.adaptive must be true or false, got 'yes'"),
    ("gwnet", {"dropout": 1.0}, r"gwnet model\.params\.dropout must be a number in \[0, 1\), got 1\.0"),
    ("stid", {"num_layers": 0}, r"stid model\.params\.num_layers must be an integer ≥ 1, got 0"),
    ("stid", {"embed_dim": 2.5}, r"stid model\.params\.embed_dim must be an integer ≥ 1, got 2\.5"),
    ("stid", {"steps_per_day": 0}, r"stid model\.params\.steps_per_day must be an integer ≥ 1"),
    ("stid", {"dropout": -0.1}, r"stid model\.params\.dropout must be a number in \[0, 1\)"),
    ("tgcn", {"target_only": "maybe"}, r"tgcn model\.params\.target_only must be true or false, got 'maybe'"),
    ("tgcn", {"hidden_size": 0}, r"tgcn model\.params\.hidden_size must be an integer ≥ 1"),
    ("gru", {"num_layers": 0}, r"gru model\.params\.num_layers must be an integer ≥ 1"),
    ("gru", {"hidden_size": True}, r"gru model\.params\.hidden_size must be an integer ≥ 1, got True"),
    ("gru", {"dropout": "1e-1"}, r"gru model\.params\.dropout must be a number in \[0, 1\), got '1e-1'"),
    ("st_gcn_demand", {"num_layers": 0}, r"st_gcn_demand model\.params\.num_layers must be an integer ≥ 1"),
    ("st_gcn_demand", {"adaptive": 1}, r"st_gcn_demand model\.params\.adaptive must be true or false"),
    ("st_gcn_demand", {"dropout": 1}, r"st_gcn_demand model\.params\.dropout must be a number in \[0, 1\)"),
    ("st_resnet", {"residual_units": 0}, r"st_resnet model\.params\.residual_units must be an integer ≥ 1"),
    ("st_resnet", {"external": "no"}, r"st_resnet model\.params\.external must be true or false, got 'no'"),
    ("risk_conv", {"conv_layers": 0}, r"risk_conv model\.params\.conv_layers must be an integer ≥ 1, got 0"),
    ("risk_conv", {"dropout": 2}, r"risk_conv model\.params\.dropout must be a number in \[0, 1\)"),
]


@pytest.mark.parametrize(("name", "params", "message"), BAD_DEEP)
def test_a_deep_param_that_breaks_the_model_is_refused_naming_it_and_its_range(name, params, message):
    with pytest.raises(ConfigError, match=message) as e:
        build_model(name, **common_params(), **params)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("gwnet", {"blocks": 1, "layers_per_block": 2, "dropout": 0, "adaptive": False}),
        ("stid", {"num_layers": 1, "dropout": 0.0}),
        ("tgcn", {"target_only": True}),
        ("st_resnet", {"residual_units": 1, "external": False}),
        ("risk_conv", {"conv_layers": 1}),
    ],
)
def test_the_smallest_valid_values_still_build_and_run(name, params):
    net = build_model(name, **common_params(), **params)
    assert net(make_x(2)).shape[:3] == (2, 3, 9)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("gbrt", {"max_iter": -5}, r"'max_iter' parameter of HistGradientBoostingRegressor must be an int"),
        ("gbrt", {"max_leaf_nodes": 1}, r"'max_leaf_nodes' parameter .* range \[2, inf\)"),
        ("gbrt", {"learning_rate": "x"}, r"'learning_rate' parameter .* Got 'x' instead"),
        ("gbrt_demand", {"min_samples_leaf": 0}, r"'min_samples_leaf' parameter"),
    ],
)
def test_a_classical_param_is_checked_by_scikit_learn_before_any_fit(name, params, message):
    model = build_model(name, **common_params(), **params)  # scikit-learn only stores params when constructed
    with pytest.raises(ValueError, match=message):
        model.check_params()


def test_risk_gbrt_checks_its_params_and_its_layout_before_any_fit():
    build_model("risk_gbrt", **risk_params()).check_params()
    with pytest.raises(ValueError, match=r"'max_leaf_nodes' parameter of HistGradientBoostingClassifier"):
        build_model("risk_gbrt", **risk_params(max_leaf_nodes=1)).check_params()
    with pytest.raises(ConfigError, match=r"risk_gbrt expects GSNet's 41-channel layout; got in_features=9"):
        build_model("risk_gbrt", **risk_params(in_features=9)).check_params()


def test_an_unknown_param_never_suggests_one_the_task_gives():
    with pytest.raises(ConfigError) as e:
        build_model("gru", **common_params(), horizn=3)
    msg = str(e.value)
    assert "'horizon' comes from the task; set it in task.params" in msg and "Did you mean" not in msg
    assert msg.endswith("Valid: dropout, hidden_size, num_layers.")  # no horizon, in_features, quantiles
    with pytest.raises(ConfigError, match=r"Did you mean 'num_layers'\? Valid: dropout, hidden_size, num_layers\.$"):
        build_model("gru", **common_params(), num_layer=2)
    with pytest.raises(ConfigError, match=r"model 'last_value' has no parameter 'lags'\..* Valid: none\.$"):
        build_model("last_value", **common_params(), lags=2)


def test_the_domain_note_names_the_models_of_the_task_domain():
    assert domain_note("gru", "traffic") is None and domain_note("stid", "risk") is None
    assert domain_note("last_value", "demand") is None  # persistence is every domain's floor
    note = domain_note("gru", "risk")
    assert note is not None and note.startswith("model 'gru' is registered for traffic, not risk; risk models: ")
    assert "risk_conv" in note and "stid" in note and "gru," not in note
    assert model_info("last_value").domain == "any"
