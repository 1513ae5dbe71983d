"""The search space of `cityagent tune` / ``tune()``: given from YAML or the command line, keys the user fixed kept
out of it, task keys refused, every choice and range end checked, all before Ray starts."""

import re

import pytest
import ray
from ray.tune.search.sample import Categorical, Float, Integer
from typer.testing import CliRunner

from cityagent.agent.cli import app
from cityagent.errors import ConfigError
from cityagent.training.tune import tune
from cityagent.training.tune_space import describe, fixed_keys, parse_search, read_space, resolve_space

pytestmark = pytest.mark.usefixtures("shared_mlflow_store")


class Stop(ConfigError):
    """Raised where Ray would start: everything before it ran."""


@pytest.fixture
def no_ray(monkeypatch):
    def stop(*args, **kwargs):
        raise Stop("stopped before Ray")

    monkeypatch.setattr("cityagent.training.tune.connect", stop)


def test_a_yaml_space_reads_choices_ranges_and_grids(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(
        "train.lr: {low: 1e-4, high: 1e-2, log: true}\n"
        "model.params.hidden_size: [8, 16]\n"
        "model.params.num_layers: {low: 1, high: 3}\n"
        "train.weight_decay: {grid_search: [0, 1e-4]}\n"
    )
    given = read_space(path) | parse_search(["model.params.dropout={low: 0.0, high: 0.2}"])
    space, notes = resolve_space(_cfg(), given)
    lr, layers = space["train.lr"], space["model.params.num_layers"]
    assert isinstance(lr, Float) and (lr.lower, lr.upper) == (1e-4, 1e-2)  # 1e-4 a number (YAML 1.2), not text
    assert isinstance(layers, Integer) and (layers.lower, layers.upper) == (1, 4)  # high included
    assert isinstance(space["model.params.hidden_size"], Categorical)
    assert space["train.weight_decay"] == {"grid_search": [0, 1e-4]} and notes == []
    described = {k: describe(v) for k, v in space.items()}  # as the sweep's MLflow run logs the space
    assert described == {
        "train.lr": "log-uniform 0.0001 to 0.01",
        "model.params.hidden_size": "one of [8, 16]",
        "model.params.num_layers": "integers 1 to 3",
        "train.weight_decay": "each of [0, 0.0001]",
        "model.params.dropout": "uniform 0 to 0.2",
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("train.lr={low: 0, high: 1e-2, log: true}", r"'train\.lr': a log range needs low > 0"),
        ("train.lr={low: 1, high: 0.1}", r"'train\.lr': range .* needs numbers low < high"),
        ("train.lr={min: 1, max: 2}", r"'train\.lr': .* is not a search spec; give a list of choices"),
        ("train.lr=[]", r"'train\.lr': the list of choices is empty"),
    ],
)
def test_a_bad_spec_names_its_key(spec, message):
    with pytest.raises(ConfigError, match=message):
        resolve_space(_cfg(), parse_search([spec]))


def test_fixed_keys_come_from_every_override_form():
    assert fixed_keys(["train.lr=0.5", "model.params={hidden_size: 8}", "model.params={}"]) == {
        "train.lr",
        "model.params.hidden_size",
    }
    assert fixed_keys({"train__lr": 0.5, "train": {"weight_decay": 0}}) == {"train.lr", "train.weight_decay"}


def test_a_fixed_key_leaves_the_default_space_and_an_explicit_one_refuses_it():
    cfg = _cfg(**{"train.lr": 0.5})
    space, notes = resolve_space(cfg, None, {"train.lr"})
    assert "train.lr" not in space and notes == ["train.lr is fixed at 0.5 by an override, not searched"]
    with pytest.raises(ConfigError, match=r"search space key 'train\.lr' is also fixed by the override train\.lr"):
        resolve_space(cfg, {"train.lr": [1e-3, 1e-2]}, {"train.lr"})
    with pytest.raises(ConfigError, match=r"model\.params\.hidden_size' is also fixed"):
        resolve_space(cfg, {"model.params.hidden_size": [8]}, fixed_keys(["model.params={hidden_size: 8}"]))


def test_task_keys_and_baselines_are_refused_with_what_to_do():
    with pytest.raises(ConfigError, match=r"'task\.params\.input_len': task keys cannot .*separate `cityagent train`"):
        resolve_space(_cfg(), {"task.params.input_len": [6]})
    with pytest.raises(ConfigError, match=r"'ha' is a parameter-free baseline .*`cityagent train`"):
        resolve_space(_cfg(**{"model.name": "ha", "model.params": {}}))


def test_tune_refuses_a_searched_task_key_before_ray(tiny_cfg):
    with pytest.raises(ConfigError, match="task keys cannot be searched"):
        tune(tiny_cfg(), samples=1, search_space={"task.params.input_len": [6]})
    assert not ray.is_initialized()


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"model.params.hidden_size": [16, -1]}, r"search space model\.params\.hidden_size=-1: .*hidden_size"),
        ({"model.params.dropout": {"low": 0.0, "high": 1.5}}, r"search space model\.params\.dropout=1\.5: "),
        ({"train.lr": [1e-3, -1.0]}, r"search space train\.lr=-1\.0: config key 'train\.lr'"),
    ],
)
def test_every_choice_and_range_end_is_checked_before_ray(tiny_cfg, no_ray, space, message):
    with pytest.raises(ConfigError, match=message) as e:
        tune(tiny_cfg(), samples=1, search_space=space)
    assert not isinstance(e.value, Stop)


def test_fixed_and_idle_keys_are_left_out_of_the_default_space_and_said(tiny_cfg, no_ray, monkeypatch):
    searched = []
    monkeypatch.setattr("cityagent.training.tune.check_space", lambda cfg, task, space: searched.append(set(space)))
    lines: list[str] = []
    with pytest.raises(Stop):  # a 1-layer GRU passes no dropout to torch
        tune(tiny_cfg(), samples=1, say=lines.append, train__lr=0.5)
    assert searched[-1] == {"train.weight_decay", "model.params.hidden_size"}
    assert lines[0] == "train.lr is fixed at 0.5 by an override, not searched"
    assert lines[1].startswith("model.params.dropout is not searched: gru as configured is the same model")
    with pytest.raises(Stop):  # two layers: dropout acts between them
        tune(tiny_cfg(**{"model.params": {"hidden_size": 8, "num_layers": 2}}), samples=1, say=lines.append)
    assert "model.params.dropout" in searched[-1]


def _cli_config(tmp_path, hub) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(
        f"task: {{domain: traffic, hub: {hub}, params: {{input_len: 6, horizon: 3}}}}\n"
        "model: {name: gru, params: {hidden_size: 8}}\n"
        "train: {max_epochs: 1, workers: 0, batch_size: 32}\n"
        "tracking: {register_model: false}\n"
    )
    return str(path)


def test_the_cli_says_which_keys_are_fixed_not_searched(tmp_path, tiny_hub, no_ray):
    args = ["tune", "traffic", "--config", _cli_config(tmp_path, tiny_hub), "--samples", "2"]
    result = CliRunner().invoke(app, [*args, "train.lr=0.5", "model.params={hidden_size: 8}"], terminal_width=200)
    assert isinstance(result.exception, Stop), result.output
    lines = result.output.splitlines()
    assert lines[0] == "tuning gru on synthetic: 2 trial(s)"
    assert "train.lr is fixed at 0.5 by an override, not searched" in lines[1]
    assert "model.params.hidden_size is fixed at 8 by an override, not searched" in lines[2]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--samples", "0"], r"tune samples=0 must be a whole number"),
        (["--search", "train.lr=[0.1]", "train.lr=0.5"], r"'train\.lr' is also fixed by the override"),
        (["--search", "task.params.input_len=[6]"], "task keys cannot be searched"),
        (["--search", "train.lr"], r"--search 'train\.lr' must look like KEY=SPEC"),
        (["model.name=ha", "model.params={}"], "`cityagent train`"),
    ],
)
def test_the_cli_refuses_before_printing_anything(tmp_path, tiny_hub, extra, message):
    args = ["tune", "traffic", "--config", _cli_config(tmp_path, tiny_hub), *extra]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ConfigError) and result.output == ""
    assert re.search(message, str(result.exception)), result.exception


def test_the_cli_reads_a_space_file(tmp_path, tiny_hub, no_ray, monkeypatch):
    searched = []
    monkeypatch.setattr("cityagent.training.tune.check_space", lambda cfg, task, space: searched.append(dict(space)))
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: [1e-3, 1e-2]\n")
    args = ["tune", "traffic", "--config", _cli_config(tmp_path, tiny_hub), "--space", str(space)]
    result = CliRunner().invoke(app, [*args, "--search", "model.params.hidden_size=[4, 8]"])
    assert isinstance(result.exception, Stop), result.output
    assert searched[-1]["train.lr"].categories == [1e-3, 1e-2] and set(searched[-1]) == {
        "train.lr",
        "model.params.hidden_size",
    }


def _cfg(**overrides):
    from cityagent.training.config import load_config

    return load_config(None, {"model.params": {"hidden_size": 8}} | overrides)
