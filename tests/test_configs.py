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


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.name=gruu", r"'model\.name': unknown model 'gruu'\. Did you mean 'gru'\? Valid models: .*stid"),
        ("model.name=STID", r"'model\.name': unknown model 'STID'\. Did you mean 'stid'\?"),
        ("task.protocol=strikt", r"'task\.protocol': unknown protocol 'strikt'; did you mean 'strict'\?"),
        ("task.params.horizn=3", r"'task\.params\.horizn': protocol 'strict' has no parameter .*'horizon'\?"),
        ("task.params.scaler=robust", r"'task\.params\.scaler': unknown scaler 'robust'; choose one of .*minmax"),
        ("task.params.horizon=0", r"'task\.params\.horizon': must be a whole number of steps ≥ 1, got 0"),
        ("task.params.calendar=[tod, dwo]", r"'task\.params\.calendar': unknown calendar channel 'dwo'.*'dow'"),
        ("task.params.impute=fill", r"'task\.params\.impute': unknown imputation 'fill'; did you mean 'ffill'"),
        ("train.quantiles=[1.5]", r"'train\.quantiles': levels must be strictly increasing and inside \(0, 1\)"),
        ("train.quantiles=[0.9, 0.1]", r"'train\.quantiles': levels must be strictly increasing"),
        ("train.loss=quantile", r"'train\.quantiles': train\.loss=quantile needs the levels"),
        ("train.seed=-1", r"'train\.seed': Input should be greater than or equal to 0"),
        ("train.limit_train_batches=0", r"'train\.limit_train_batches': give a share in \(0, 1\]"),
        ("train.limit_train_batches=2.5", r"'train\.limit_train_batches': give a share in \(0, 1\]"),
        ("train.num_threads=-3", r"'train\.num_threads': Input should be greater than or equal to 1"),
        ("train.lr=.inf", r"'train\.lr': Input should be a finite number"),
        ("train.quantiles=[0.1,", r"override 'train\.quantiles=\[0\.1,': the value is not valid YAML"),
    ],
)
def test_what_needs_no_data_is_checked_when_the_config_loads(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CONFIGS / "traffic.yaml", [override])


def test_a_model_registered_at_run_time_is_a_valid_model_name():
    from cityagent.models import registry

    registry.register("config_probe_model", domain="traffic", kind="baseline")(lambda horizon: None)
    try:
        assert (
            load_config(None, ["model.name=config_probe_model", "model.params={}"]).model.name == "config_probe_model"
        )
    finally:
        registry._REGISTRY.pop("config_probe_model")


def test_model_names_read_from_source_are_the_registrys():
    from cityagent.training.config import _source_models

    assert sorted(_source_models()) == list_models()


@pytest.mark.parametrize(("typed", "value"), [("2024", "2024"), ("1.10", "1.10"), ("yes", "yes"), ("'off'", "off")])
def test_a_text_field_takes_the_text_typed_on_the_command_line(typed, value):
    assert load_config(None, [f"tracking.experiment={typed}"]).tracking.experiment == value


def test_a_number_in_a_text_field_is_its_text_and_a_boolean_is_refused_saying_to_quote_it():
    assert load_config(None, {"tracking.experiment": 2024}).tracking.experiment == "2024"
    assert load_config(None, tracking={"experiment": 7}).tracking.experiment == "7"
    with pytest.raises(
        ConfigError, match=r"'tracking\.experiment': expected text, but YAML read the boolean true.*quote"
    ):
        load_config(None, {"tracking.experiment": True})
    assert load_config(None, ["tracking.experiment=null"]).tracking.experiment is None
    with pytest.raises(ConfigError, match=r"'train\.max_epochs': expected a number, not the boolean true"):
        load_config(None, ["train.max_epochs=true"])


def test_numbers_read_as_written_and_a_key_given_twice_is_refused(tmp_path):
    """YAML 1.1 read 5e-2 as text and 010 as eight; config files and overrides read them as people mean them."""
    path = tmp_path / "run.yaml"
    path.write_text(
        f"defaults: [{CONFIGS / 'traffic.yaml'}]\nmodel:\n  params: {{dropout: 5e-2}}\ntrain:\n  lr: 1e-3\n"
    )
    cfg = load_config(path, ["train.max_epochs=010", "model.params.embed_dim=1e1"])
    assert cfg.model.params["dropout"] == 0.05 and cfg.train.lr == 0.001 and cfg.train.max_epochs == 10
    assert cfg.model.params["embed_dim"] == 10.0 and isinstance(cfg.model.params["embed_dim"], float)
    path.write_text("train:\n  max_epochs: 2\n  lr: 0.01\n  max_epochs: 1\n")
    with pytest.raises(
        ConfigError, match=r"is not valid YAML.*the key 'max_epochs' is given twice \(first on line 2\)"
    ):
        load_config(path)
