"""tune(): ASHA over in-process trials and over Ray Train trials, every trial in MLflow, the best one in full."""

import pytest
import ray
from mlflow import MlflowClient
from ray import tune as ray_tune

from cityagent.errors import CityAgentError, ConfigError
from cityagent.training.tracking import tracking_uri
from cityagent.training.tune import classical_search_space, default_search_space, trial_config, tune

BOOSTING = ("learning_rate", "max_leaf_nodes", "min_samples_leaf", "l2_regularization")

pytestmark = pytest.mark.usefixtures("shared_mlflow_store")


def test_search_space_and_trial_configs(tiny_cfg):
    cfg = tiny_cfg()
    space = default_search_space(cfg)
    assert {"train.lr", "train.weight_decay", "model.params.hidden_size", "model.params.dropout"} <= set(space)
    trial = trial_config(cfg.model_dump(), {"train.lr": 0.05, "model.params.hidden_size": 4})
    assert trial.train.lr == 0.05 and trial.model.params["hidden_size"] == 4 and cfg.model.params["hidden_size"] == 8


def test_tune_refuses_models_without_weights(tiny_cfg):
    with pytest.raises(ConfigError, match="train it with `cityagent train`"):
        tune(tiny_cfg(**{"model.name": "ha", "model.params": {}}), samples=2)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"model.params.max_leafs": [3, 5]}, "no parameter 'max_leafs'. Did you mean 'max_leaf_nodes'"),
        ({"train.learning_rate": ray_tune.loguniform(1e-3, 1e-1)}, "train.learning_rate"),
    ],
)
def test_a_bad_search_space_key_fails_before_any_trial(tiny_cfg, space, message):
    cfg = tiny_cfg(**{"model.name": "gbrt", "model.params": {"max_iter": 5}})
    with pytest.raises(ConfigError, match=message):
        tune(cfg, samples=2, search_space=space)
    assert not ray.is_initialized()


def test_classical_sweep_ranks_trials_on_validation_and_fits_the_best_in_full(tiny_cfg):
    cfg = tiny_cfg(**{"model.name": "gbrt", "model.params": {"max_iter": 20, "n_threads": 1}, "train.refit": True})
    assert set(classical_search_space(cfg)) == {f"model.params.{k}" for k in BOOSTING}
    space = {"model.params.max_leaf_nodes": ray_tune.grid_search([3, 31]), "model.params.learning_rate": 0.2}
    result = tune(cfg, samples=1, search_space=space)  # 2 trials
    client = MlflowClient(tracking_uri())
    parent = client.get_run(result.info["parent_run_id"])
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 2 and parent.data.metrics["trials_ok"] == 2
    val = {c.data.params["model.params.max_leaf_nodes"]: c.data.metrics["val_mae"] for c in children}
    best_leaves = result.info["best_config"]["model.params.max_leaf_nodes"]
    assert val[str(best_leaves)] == min(val.values()) == parent.data.metrics["best_val_mae"]
    best = client.get_run(result.run_id)
    assert best.data.tags["cityagent.tune_best"] == "true" and "test_mae" in result.metrics
    assert best.data.params["train.refit"] == "True"  # the final fit learns validation too, the trials did not
    assert result.info["export"].startswith("skipped") and not ray.is_initialized()


def _check_sweep(result, samples: int) -> None:
    client = MlflowClient(tracking_uri())
    parent = client.get_run(result.info["parent_run_id"])
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == samples  # every trial, the best one included
    best = client.get_run(result.run_id)
    assert best.data.tags["cityagent.tune_best"] == "true" and "test_mae" in best.data.metrics
    assert best.data.params["train.lr"] == str(result.info["best_config"]["train.lr"])
    assert result.bundle_path.endswith("bundle/model.pt")


def test_asha_sweep_in_process(tiny_cfg):
    cfg = tiny_cfg(**{"train.max_epochs": 4})
    result = tune(cfg, samples=1, search_space={"train.lr": ray_tune.grid_search([1e-3, 1e-2, 3e-2])})  # 3 trials
    _check_sweep(result, 3)
    assert not ray.is_initialized()


def test_a_diverged_trial_is_never_the_best_and_a_sweep_of_only_diverged_trials_is_refused(tiny_cfg):
    cfg = tiny_cfg(**{"train.max_epochs": 2})
    result = tune(cfg, samples=1, search_space={"train.lr": ray_tune.grid_search([1e12, 1e-2])})
    assert result.info["best_config"]["train.lr"] == 1e-2 and "diverged" not in result.info
    client = MlflowClient(tracking_uri())
    parent = client.get_run(result.info["parent_run_id"])
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    tags = {c.data.params["train.lr"]: c.data.tags.get("cityagent.trial_error", "") for c in children}
    assert tags["1000000000000.0"].startswith("diverged") and not tags["0.01"], tags
    assert parent.data.metrics["trials_ok"] == 1
    with pytest.raises(CityAgentError, match=r"every one of the 2 trials that ran diverged .*lower the learning rate"):
        tune(cfg, samples=1, search_space={"train.lr": ray_tune.grid_search([1e12, 1e13])})


@pytest.mark.slow
@pytest.mark.ray
def test_asha_sweep_of_ray_train_trials(tiny_cfg):
    cfg = tiny_cfg(**{"train.workers": 2})
    result = tune(cfg, samples=2, search_space={"train.lr": [1e-3, 1e-2]})
    _check_sweep(result, 2)
    assert result.info["workers"] == 2 and not ray.is_initialized()
