"""A model of your own, trained like cityagent's: in-process, exported, and rebuilt by a process that never imported
it; one that breaks the model contract is refused before its MLflow run opens, saying what a model must do."""

import sys
import uuid

import pytest
import torch
import yaml
from mlflow import MlflowClient
from torch import nn

from cityagent.errors import ConfigError
from cityagent.models import registry
from cityagent.training.evaluate import evaluate_run
from cityagent.training.export import export_run
from cityagent.training.fit import fit
from cityagent.training.tracking import tracking_uri
from tests.own_models import NODE_MLP, own_registry  # noqa: F401

pytestmark = pytest.mark.usefixtures("shared_mlflow_store", "own_registry")


def forget(name: str, module: str) -> None:
    """As a new process sees it: the model not registered, its module not imported."""
    del registry._REGISTRY[name]
    del sys.modules[module]


def test_own_model_trains_exports_and_is_rebuilt_where_its_module_was_never_imported(tiny_cfg, tmp_path, monkeypatch):
    module, name = f"own_models_{uuid.uuid4().hex[:8]}", "own_mlp"
    (tmp_path / f"{module}.py").write_text(NODE_MLP.format(name=name))
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__(module)  # `import my_models` in a notebook, then fit
    cfg = tiny_cfg(**{"model.name": name, "model.params": {}, "train.max_epochs": 1, "tracking.register_model": True})
    result = fit(cfg, progress=False)
    assert result.info["mode"] == "local" and result.info["export"].startswith("done: models:/traffic-")
    logged = MlflowClient(tracking_uri()).download_artifacts(result.run_id, "config.yaml", str(tmp_path))
    assert yaml.safe_load(open(logged))["model"]["module"] == module  # filled in from where it was registered

    forget(name, module)  # `cityagent export RUN_ID` in a new shell: the bundle names the module to import
    again = export_run(result.run_id, register=False)
    assert again.already_logged and again.parity < 1e-4
    forget(name, module)  # `cityagent evaluate RUN_ID`: the logged config names it
    assert evaluate_run(result.run_id)["test_mae"] == pytest.approx(result.metrics["test_mae"], rel=1e-5)


class OutputNodesFirst(nn.Module):
    """Returns [B, N, H] instead of [B, H, N]."""

    def __init__(self, input_len: int, in_features: int, horizon: int):
        super().__init__()
        self.lin = nn.Linear(input_len * in_features, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, n, f = x.shape
        return self.lin(x.permute(0, 2, 1, 3).reshape(b, n, t * f))  # [B, N, H]


class InputNodesFirst(nn.Module):
    """Reads x as [B, N, T] (one feature, nodes first)."""

    def __init__(self, input_len: int, horizon: int):
        super().__init__()
        self.lin = nn.Linear(input_len, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x).transpose(1, 2)


class TwoInputs(nn.Module):
    """Wants the adjacency as a second forward argument."""

    def __init__(self, horizon: int):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(horizon))

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        return x


@pytest.mark.parametrize(
    ("builder", "said"),
    [
        (OutputNodesFirst, r"returned \[2, 6, 3\] for x of shape \[2, 6, 6, \d+\], not \[2, 3, 6\]"),
        (InputNodesFirst, r"failed on x of shape \[2, 6, 6, \d+\] \(RuntimeError: mat1 and mat2 shapes"),
        (TwoInputs, r"failed on x of shape .*TypeError: .*forward\(\) missing 1 required positional argument: 'adj'"),
    ],
)
def test_a_model_that_breaks_the_contract_is_refused_before_its_run(tiny_cfg, builder, said):
    name = f"broken_{builder.__name__.lower()}"
    registry.register(name, domain="traffic")(builder)
    cfg = tiny_cfg(**{"model.name": name, "model.params": {}, "task.params": {"input_len": 6, "horizon": 3}})
    with pytest.raises(ConfigError, match=said) as err:
        fit(cfg, progress=False)
    assert "forward takes one tensor x [B, T_in, N, F]" in str(err.value) and "returns [B, H, N]" in str(err.value)
    client = MlflowClient(tracking_uri())
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], f"tags.`cityagent.model` = '{name}'"
    )
    assert not runs  # refused before an MLflow run opened
