"""Models of your own: registered again from a re-run cell, imported by ``model.module``, shipped from ``__main__``."""

import uuid

import pytest
import ray.cloudpickle
import torch
from torch import nn

from cityagent.errors import ConfigError
from cityagent.models import build_model, list_models, model_info, registry
from cityagent.models.user_models import adopt, ensure_registered, main_model, user_module
from cityagent.training.config import load_config
from tests.models.inputs import common_params
from tests.own_models import own_registry  # noqa: F401

MODULE_SOURCE = '''
from torch import nn
from cityagent.models import register


@register("{name}", domain="traffic")
class OwnNet(nn.Module):
    """A linear map from each node's last step to the horizon."""

    def __init__(self, in_features: int, horizon: int):
        super().__init__()
        self.head = nn.Linear(in_features, horizon)

    def forward(self, x):
        return self.head(x[:, -1]).transpose(1, 2)  # [B, N, F] → [B, H, N]
'''


@pytest.fixture(autouse=True)
def _own_registry(own_registry):  # noqa: F811
    """Models registered here stay here."""


def notebook_class(doc: str) -> type:
    """A class as a notebook cell defines it: top level of ``__main__``, so a re-run defines it again."""

    def __init__(self, horizon: int) -> None:
        nn.Module.__init__(self)
        self.bias = nn.Parameter(torch.zeros(horizon))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1:, :, 0] + self.bias[None, :, None]  # [B, H, N]

    return type(
        "CellNet", (nn.Module,), {"__module__": "__main__", "__doc__": doc, "__init__": __init__, "forward": forward}
    )


def test_a_notebook_cell_run_again_replaces_its_model():
    first, second = notebook_class("First version."), notebook_class("Second version.")
    registry.register("cell_net", domain="traffic")(first)
    registry.register("cell_net", domain="traffic")(second)  # the cell edited and run again
    assert model_info("cell_net").builder is second and model_info("cell_net").summary == "Second version."

    class Other(nn.Module):  # another definition under the same name is still a mistake
        """Another model."""

    with pytest.raises(ValueError, match=r"'cell_net' is registered twice \(__main__\.CellNet and .*Other\); rename"):
        registry.register("cell_net", domain="traffic")(Other)


def test_a_notebook_model_travels_to_a_process_that_never_ran_the_notebook():
    registry.register("cell_net", domain="traffic")(notebook_class("A notebook's model."))
    shipped = ray.cloudpickle.dumps(main_model("cell_net"))  # as Ray sends it: by value, for it is in __main__
    del registry._REGISTRY["cell_net"]  # a Ray worker's registry
    adopt(ray.cloudpickle.loads(shipped))
    assert model_info("cell_net").summary == "A notebook's model."
    assert build_model("cell_net", **common_params())(torch.zeros(2, 12, 9, 9)).shape == (2, 3, 9)
    assert main_model("gru") is None and user_module("gru") is None  # cityagent's own need no shipping


def test_model_module_is_imported_before_the_name_is_checked(tmp_path, monkeypatch):
    module, name = f"own_models_{uuid.uuid4().hex[:8]}", "own_net"
    (tmp_path / f"{module}.py").write_text(MODULE_SOURCE.format(name=name))
    monkeypatch.chdir(tmp_path)  # my_models.py beside the command, as `cityagent train` is run
    cfg = load_config(None, {"model.name": name, "model.module": module})
    assert cfg.model.module == module and user_module(name) == module and name in list_models("traffic")


def test_model_module_errors_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"config key 'model.module': module 'no_such_models' cannot be imported"):
        load_config(None, {"model.name": "own_net", "model.module": "no_such_models"})
    with pytest.raises(ConfigError, match=r"unknown model 'own_net'.*A model of your own: set model.module"):
        load_config(None, {"model.name": "own_net"})
    (tmp_path / "own_models_broken.py").write_text("import not_installed_dependency\n")
    with pytest.raises(ModuleNotFoundError, match="not_installed_dependency"):  # its own traceback, not ours
        load_config(None, {"model.name": "own_net", "model.module": "own_models_broken"})
    (tmp_path / "own_models_empty.py").write_text("")
    with pytest.raises(ConfigError, match=r"'own_models_empty' was imported but registers no model 'own_net'"):
        ensure_registered("own_net", "own_models_empty")


def test_a_notebook_model_read_in_a_new_process_says_how_to_register_it():
    with pytest.raises(ConfigError, match=r"registered in a notebook or script \(__main__\).*run its @register"):
        ensure_registered("cell_net", "__main__")


def test_a_hyperparameter_without_a_default_is_asked_for_by_its_key():
    registry.register("needs_width", domain="traffic")(lambda horizon, width: nn.Linear(width, horizon))
    with pytest.raises(ConfigError, match=r"needs model.params 'width': its builder has no default"):
        build_model("needs_width", **common_params())
