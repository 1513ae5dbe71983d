"""The Lightning engine on a tiny task: data shapes and sharding, build params, and a loss that drops."""

import dataclasses

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from cityagent.errors import ConfigError
from cityagent.training.build import build_params
from cityagent.training.data import WindowDataset, predict_split, torch_predictor
from cityagent.training.engine import History, all_batches_as_none, make_loaders, make_module, trainer_kwargs
from cityagent.training.task import load_task


@pytest.fixture
def task_and_cfg(tiny_cfg):
    cfg = tiny_cfg(**{"train.max_epochs": 8, "train.lr": 1e-2})
    task, _ = load_task(cfg.task)
    return task, cfg


def test_dataset_gathers_windows_lazily_and_shards(task_and_cfg):
    task, _ = task_and_cfg
    ds = WindowDataset(task.train)
    x, y, mask = ds[0]
    assert x.shape == (6, 6, len(task.feature_names)) and y.shape == (3, 6) and mask.dtype == torch.bool
    xb, _, _ = next(iter(DataLoader(ds, batch_size=5)))
    np.testing.assert_array_equal(xb.numpy(), task.train.batch(np.arange(5))[0])
    shards = [list(DistributedSampler(ds, num_replicas=2, rank=r, shuffle=False)) for r in (0, 1)]
    assert set(shards[0]) | set(shards[1]) == set(range(len(ds)))  # each rank its half (padded to equal length)
    assert len(shards[0]) == len(shards[1]) == (len(ds) + 1) // 2


def test_build_params_come_from_the_task(task_and_cfg):
    task, cfg = task_and_cfg
    params = build_params(task, cfg.model)
    assert params["num_nodes"] == 6 and params["horizon"] == 3 and params["hidden_size"] == 8
    assert params["adjacency"].shape == (6, 6) and "grid" not in params  # 6 sensors are not the 2×2 zone grid
    with pytest.raises(ConfigError, match="come from the task"):
        build_params(task, cfg.model.model_copy(update={"params": {"horizon": 5}}))


def test_steps_per_day_auto_follows_the_hub_step(task_and_cfg):
    task, cfg = task_and_cfg
    auto = cfg.model.model_copy(update={"params": {"steps_per_day": "auto"}})
    for step, slots in (("5min", 288), ("15min", 96), ("1h", 24), ("30min", 48)):
        assert build_params(dataclasses.replace(task, step=step), auto)["steps_per_day"] == slots
    with pytest.raises(ConfigError, match=r"steps_per_day=auto: a day is not a whole number of the hub's 7min"):
        build_params(dataclasses.replace(task, step="7min"), auto)


def test_loss_drops_and_history_has_every_epoch(task_and_cfg):
    task, cfg = task_and_cfg
    pl.seed_everything(0, verbose=False)
    module, _ = make_module(task, cfg)
    history = History()
    trainer = pl.Trainer(**trainer_kwargs(cfg), devices=1, callbacks=[history], enable_checkpointing=False)
    trainer.fit(module, *make_loaders(task, cfg))
    losses = [r["train_loss"] for r in history.rows]
    assert [r["epoch"] for r in history.rows] == list(range(8))
    assert losses[-1] < 0.8 * losses[0] and history.rows[-1]["val_loss"] < history.rows[0]["val_loss"]
    assert {"val_mae", "lr"} <= set(history.rows[0])
    pred = predict_split(torch_predictor(module.model), task.test)
    assert pred.shape == (len(task.test), 3, 6) and np.isfinite(pred).all()


def test_epoch_metrics_log_without_lightnings_sync_dist_advice(task_and_cfg, tmp_path, recwarn):
    # each Ray worker printed Lightning's advice to log 'lr' with sync_dist=True, every run
    task, cfg = task_and_cfg
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_epochs": 1})})
    module, _ = make_module(task, cfg)
    module.resumed_from_epoch = 0
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:  # a one-process DDP group: Lightning warns as it does under Ray's DDP
        trainer = pl.Trainer(**trainer_kwargs(cfg), devices=1, strategy="ddp", enable_checkpointing=False)
        trainer.fit(module, *make_loaders(task, cfg))
    finally:
        torch.distributed.destroy_process_group()
    assert [str(w.message) for w in recwarn if "sync_dist=True" in str(w.message)] == []


def test_all_batches_is_lightnings_default_and_one_batch_stays_one():
    assert all_batches_as_none(1.0) is None  # Lightning announces an explicit 1.0 on every run
    assert all_batches_as_none(1) == 1 and isinstance(all_batches_as_none(1), int)  # one batch, not all
    assert all_batches_as_none(0.25) == 0.25 and all_batches_as_none(7) == 7


def test_quantile_module_predicts_sorted_levels(tiny_cfg):
    cfg = tiny_cfg(**{"train.loss": "quantile", "train.quantiles": [0.1, 0.5, 0.9], "train.max_epochs": 1})
    task, _ = load_task(cfg.task)
    module, params = make_module(task, cfg)
    assert params["quantiles"] == (0.1, 0.5, 0.9) and module.point_index == 1
    pred = predict_split(torch_predictor(module.model), task.val)
    assert pred.shape[-1] == 3 and (np.diff(pred, axis=-1) >= 0).all()
