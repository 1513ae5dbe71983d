"""fit() in-process: one MLflow run with everything in it, bundles that reproduce, baselines in the same shape."""

import logging
import re
import signal
import socket
import time

import lightning.pytorch as pl
import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from cityagent.errors import CityAgentError, ConfigError
from cityagent.models.classical.gbrt import GBRTForecaster
from cityagent.training.bundle import ModelBundle
from cityagent.training.data import predict_split, torch_predictor
from cityagent.training.evaluate import evaluate_run
from cityagent.training.fit import fit
from cityagent.training.overrides import resolve_config
from cityagent.training.report import interval_calibration
from cityagent.training.task import load_task
from cityagent.training.tracking import tracking_uri

pytestmark = pytest.mark.usefixtures("shared_mlflow_store")


def _artifacts(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    out = set()
    for f in client.list_artifacts(run_id, path):
        out |= _artifacts(client, run_id, f.path) if f.is_dir else {f.path}
    return out


def test_in_process_fit_leaves_a_complete_mlflow_run(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # this test checks the default store under CITYAGENT_HOME
    cfg = tiny_cfg()
    result = fit(cfg)
    assert tracking_uri() == f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri())
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "cityagent-traffic"
    assert run.data.params["train.max_epochs"] == "2" and run.data.params["model.name"] == "gru"
    assert run.data.params["data.fingerprint"] == run.data.tags["cityagent.hub_fingerprint"]
    assert len(run.data.tags["cityagent.hub_fingerprint"]) == 64
    assert run.data.tags["cityagent.task"] == "traffic-synthetic" and run.data.tags["cityagent.mode"] == "local"
    assert "mlflow.source.git.commit" in run.data.tags  # the tests run inside the repo
    assert [m.step for m in client.get_metric_history(result.run_id, "val_loss")] == [0, 1]
    assert {"test_mae", "test_rmse", "test_mape", "test_mae_h3"} <= set(run.data.metrics)
    assert run.data.metrics["test_mae"] == pytest.approx(result.metrics["test_mae"])
    assert {
        "config.yaml",
        "task_notes.txt",
        "metrics/per_horizon.csv",
        "plots/forecast.png",
        "plots/loss.png",
        "bundle/model.pt",
        "bundle/sample.npz",
    } <= _artifacts(client, result.run_id)
    assert str(tmp_path / "home" / "artifacts") in result.bundle_path  # artifacts beside the db, not ./mlruns

    bundle = ModelBundle.load(result.bundle_path)
    meta = bundle.meta
    assert meta["run_id"] == result.run_id and meta["task"] == "traffic-synthetic" and meta["horizon"] == 3
    assert meta["input_offsets"] == [-5, -4, -3, -2, -1, 0] and meta["target_offsets"] == [1, 2, 3]
    assert meta["units"] == "km/h" and len(meta["nodes"]) == len(meta["eval_mask"]) == 6
    # what a client outside cityagent needs to build x: each channel's valid range, one-hot groups, the zone
    assert meta["input_ranges"]["speed"] == [0.0, 300.0] and meta["input_ranges"]["tod"] == [0.0, 1.0]
    assert meta["one_hot"] == [[f"dow_{d}" for d in range(7)]] and meta["timezone"] == "Asia/Shanghai"
    assert meta["calendar"]["dow_0"] == "day of week one-hot, 7 columns, Monday first"
    task, _ = load_task(cfg.task)
    pred = predict_split(torch_predictor(bundle.build()), task.test)
    _, y, mask = task.test.arrays()
    assert np.abs(pred - y)[mask].mean() == pytest.approx(result.metrics["test_mae"], rel=1e-5)
    assert evaluate_run(result.run_id) == pytest.approx(result.metrics, rel=1e-5, nan_ok=True)


@pytest.mark.parametrize("name", ["ha", "last_value", "gbrt"])
def test_baselines_and_classical_log_the_same_metrics(tiny_cfg, name):
    params = {"max_iter": 10} if name == "gbrt" else {}
    result = fit(tiny_cfg(**{"model.name": name, "model.params": params}))
    assert result.checkpoint is None and result.history == []
    assert {"test_mae", "test_rmse", "test_mape", "test_mae_h1", "test_rmse_h3"} <= set(result.metrics)
    assert np.isfinite(result.metrics["test_mae"])
    assert evaluate_run(result.run_id) == pytest.approx(result.metrics, rel=1e-5, nan_ok=True)


def test_risk_run_has_gsnet_metrics_and_a_risk_map(tiny_cfg):
    result = fit(tiny_cfg(**{"task.domain": "risk", "model.name": "risk_ha", "model.params": {}}))
    assert {"test_gsnet_rmse", "test_recall", "test_map"} <= set(result.metrics)
    client = MlflowClient(tracking_uri())
    assert "plots/risk_map.png" in _artifacts(client, result.run_id)
    assert client.get_experiment_by_name("cityagent-risk") is not None


def test_unknown_model_lists_valid_ones_before_reading_data(tiny_cfg):
    with pytest.raises(ConfigError, match=r"unknown model 'gruu'.*Did you mean 'gru'.*Valid models: .*tgcn"):
        fit(tiny_cfg(**{"model.name": "gruu", "task.dataset": "no-such-data"}))


def test_unreachable_tracking_server_fails_fast_naming_it(tiny_cfg):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    t0 = time.perf_counter()
    with pytest.raises(CityAgentError, match=rf"http://127.0.0.1:{port} is not reachable"):
        fit(tiny_cfg(**{"tracking.tracking_uri": f"http://127.0.0.1:{port}"}))
    assert time.perf_counter() - t0 < 10


def _run_count(client: MlflowClient) -> int:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return len(client.search_runs(experiments)) if experiments else 0


@pytest.mark.parametrize(
    ("model", "params", "named"),
    [
        ("stid", {"dropout": "abc"}, r"stid model\.params\.dropout must be a number in \[0, 1\), got 'abc'"),
        ("gru", {"hidden_size": -4}, r"gru model\.params\.hidden_size must be an integer ≥ 1, got -4"),
        ("gbrt", {"max_iter": -5}, r"model 'gbrt' cannot be built from model\.params .*'max_iter' parameter"),
    ],
)
def test_a_model_param_the_model_cannot_take_fails_before_a_run_opens(tiny_cfg, model, params, named):
    client = MlflowClient(tracking_uri())
    before = _run_count(client)
    with pytest.raises(ConfigError, match=named):
        fit(tiny_cfg(**{"model.name": model, "model.params": params}))
    assert _run_count(client) == before  # no FAILED run left behind


def test_a_quantile_loss_without_levels_fails_before_a_run_opens(tiny_cfg):
    client = MlflowClient(tracking_uri())
    before = _run_count(client)
    with pytest.raises(ConfigError, match=r"config key 'train\.quantiles': train\.loss=quantile needs the levels"):
        fit(tiny_cfg(), train__loss="quantile")
    assert _run_count(client) == before  # no FAILED run left behind


def test_deep_quantiles_without_the_quantile_loss_fail_before_a_run_opens(tiny_cfg):
    client = MlflowClient(tracking_uri())
    runs_before = _run_count(client)
    with pytest.raises(ConfigError, match=r"train\.loss.*only with train\.loss=quantile \(got 'mae'\)"):
        fit(tiny_cfg(**{"model.name": "gru", "train.quantiles": [0.1, 0.5, 0.9]}))
    assert _run_count(client) == runs_before


def test_overrides_merge_into_a_config(tiny_cfg):
    base = tiny_cfg()
    cfg = resolve_config(base, {"train__max_epochs": 7, "model": {"name": "tgcn"}, "task.params": {"horizon": 1}})
    assert (cfg.train.max_epochs, cfg.model.name, cfg.task.params) == (7, "tgcn", {"horizon": 1})
    assert cfg.task.hub == base.task.hub and cfg.train.workers == 0
    with pytest.raises(ConfigError, match=r"not section\.key"):
        resolve_config(base, {"epochs": 3})
    assert mlflow.get_tracking_uri()  # fit never changed the global MLflow state in a way that breaks users


def test_registered_when_asked_and_export_failures_do_not_fail_the_run(tiny_cfg, monkeypatch):
    pytest.importorskip("cityagent.training.export", reason="the export/registry module is not in this tree")
    result = fit(tiny_cfg(**{"model.name": "ha", "model.params": {}, "tracking.register_model": True}))
    assert result.info["export"].startswith("done: models:/traffic-synthetic/")
    assert re.search(r"\(registered traffic-synthetic v\d+ as challenger\)$", result.info["export"])
    # every trained model carries the summary the agent's drift watch compares live inputs with, not only retrains
    logged = [a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id)]
    assert "drift_reference.json" in logged and result.task is not None
    gbrt = {"model.name": "gbrt", "model.params": {"max_iter": 5}, "tracking.register_model": True}
    assert fit(tiny_cfg(**gbrt)).info["export"].startswith("done: models:/traffic-synthetic/")  # trees translate
    # a classical model without a torch translation (as risk_gbrt, which needs GSNet's layout to train at all)
    monkeypatch.delattr(GBRTForecaster, "to_torch")
    classical = fit(tiny_cfg(**gbrt))  # not exported: the run stays, the reason is kept
    assert classical.info["export"].startswith("failed:") and "no ONNX translation" in classical.info["export"]
    assert "test_mae" in classical.metrics


def test_classical_runs_log_validation_and_refit_learns_it(tiny_cfg):
    params = {"model.name": "gbrt", "model.params": {"max_iter": 20, "n_threads": 1}}
    plain, refit = fit(tiny_cfg(**params)), fit(tiny_cfg(**params, **{"train.refit": True}))
    client = MlflowClient(tracking_uri())
    logged = [client.get_run(r.run_id).data.metrics for r in (plain, refit)]
    val = [{k: v for k, v in m.items() if k.startswith("val_")} for m in logged]
    assert {"val_mae", "val_rmse"} <= set(val[0]) and val[0] == pytest.approx(val[1])  # scored before the refit
    assert refit.metrics["test_mae"] != pytest.approx(plain.metrics["test_mae"])  # another estimator: more windows
    assert evaluate_run(refit.run_id) == pytest.approx(refit.metrics, rel=1e-5, nan_ok=True)  # the refit one is kept
    with pytest.raises(ConfigError, match=r"train\.refit applies to classical models; 'gru' is a deep model"):
        fit(tiny_cfg(**{"model.name": "gru", "train.refit": True}))


def test_gbrt_demand_quantile_run_scores_intervals_and_registers_them(tiny_cfg):
    pytest.importorskip("cityagent.training.export", reason="the export/registry module is not in this tree")
    cfg = tiny_cfg(
        **{
            "model.name": "gbrt_demand",
            "model.params": {"max_iter": 20, "n_threads": 1},
            "train.quantiles": [0.1, 0.5, 0.9],
            "tracking.register_model": True,
        }
    )
    result = fit(cfg)
    assert {"test_mae", "test_pinball", "test_coverage"} <= set(result.metrics)
    assert 0 < result.metrics["test_coverage"] <= 100
    assert result.info["export"].startswith("done: models:/traffic-synthetic/")  # the ONNX holds all three levels
    assert evaluate_run(result.run_id) == pytest.approx(result.metrics, rel=1e-5, nan_ok=True)


def test_deep_quantile_run_calibrates_its_interval_on_validation(tiny_cfg, caplog):
    pytest.importorskip("cityagent.training.export", reason="the export/registry module is not in this tree")
    q = {"model.name": "gru", "train.loss": "quantile", "train.quantiles": [0.1, 0.5, 0.9]}
    with caplog.at_level(logging.WARNING, logger="cityagent.training.conformal"):
        result = fit(tiny_cfg(**q, **{"train.conformal": True, "tracking.register_model": True}))
    logged = MlflowClient(tracking_uri()).get_run(result.run_id).data.metrics
    assert 0 < logged["conformal_val_days"] < 7 and "less than a week" in caplog.text  # the tiny city's few days
    assert {"conformal_margin_h1", "conformal_margin_h2", "conformal_margin_h3"} <= set(logged)
    # the margin is the (0.8 × (1 + 1/n))-quantile of validation's scores: at least nominal there, barely above
    assert 80 <= logged["val_coverage_calibrated"] <= 85
    bundle = ModelBundle.load(result.bundle_path)
    assert bundle.meta["interval_calibration"] == "split conformal (CQR) on the validation split"  # for clients
    margin = bundle.state_dict["margin"]
    assert margin.numpy() == pytest.approx([logged[f"conformal_margin_h{h}"] for h in (1, 2, 3)], abs=1e-6)
    assert evaluate_run(result.run_id) == pytest.approx(result.metrics, rel=1e-5, nan_ok=True)  # margin reloaded
    assert result.info["export"].startswith("done: models:/traffic-synthetic/")  # and in the ONNX graph


def test_bundles_say_how_their_interval_was_calibrated(tiny_cfg):
    assert interval_calibration(tiny_cfg()) is None  # a point forecast has no interval
    assert interval_calibration(tiny_cfg(**{"train.quantiles": [0.1, 0.5, 0.9]})) == "none: the quantile loss alone"
    trees = {"model.name": "gbrt_demand", "model.params": {"conformal": True, "conformal_frac": 0.25}}
    got = interval_calibration(tiny_cfg(**trees, **{"train.quantiles": [0.1, 0.9]}))
    assert got == "split conformal (CQR) on the newest 25% of the training windows"


def test_conformal_without_an_interval_or_on_a_tree_model_is_refused(tiny_cfg):
    with pytest.raises(ConfigError, match=r"train\.conformal needs an interval to calibrate: train\.quantiles=None"):
        fit(tiny_cfg(**{"model.name": "gru", "train.conformal": True}))
    with pytest.raises(ConfigError, match=r"'gbrt_demand' is classical\. gbrt_demand has its own"):
        fit(tiny_cfg(**{"model.name": "gbrt_demand", "train.quantiles": [0.1, 0.9], "train.conformal": True}))


class CtrlC(pl.Callback):
    """Ctrl-C during the second epoch (the KeyboardInterrupt Python raises on SIGINT)."""

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt


def test_ctrl_c_is_a_keyboard_interrupt_the_run_killed_and_sigint_handled_again(tiny_cfg):
    """Lightning turns Ctrl-C into sys.exit(1) and ignores SIGINT from then on: a notebook's `except
    KeyboardInterrupt` never ran, the run was marked FAILED, and the kernel could not be interrupted again."""
    import cityagent.training

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        cityagent.training.fit(tiny_cfg(), callbacks=[CtrlC()])  # the module, called, as the docs write it
    assert signal.getsignal(signal.SIGINT) is before
    client = MlflowClient(tracking_uri())
    run = client.search_runs(client.get_experiment_by_name("cityagent-traffic").experiment_id, max_results=1)[0]
    assert run.info.status == "KILLED"


def test_each_epoch_is_said_as_it_ends(tiny_cfg, capsys):
    fit(tiny_cfg())
    lines = [line for line in capsys.readouterr().out.splitlines() if " epoch " in line]
    assert len(lines) == 2 and lines[0].startswith("gru epoch 1/2 · train_loss ") and "(best)" in lines[0]
    assert "at most ~" in lines[0] and "left" not in lines[1]
    fit(tiny_cfg(), progress=False)
    assert " epoch " not in capsys.readouterr().out


def test_a_deleted_experiment_is_named_with_how_to_restore_it(tiny_cfg):
    cfg = tiny_cfg(**{"model.name": "ha", "model.params": {}, "tracking.experiment": "deleted-in-the-ui"})
    fit(cfg)
    client = MlflowClient(tracking_uri())
    exp = client.get_experiment_by_name("deleted-in-the-ui")
    client.delete_experiment(exp.experiment_id)
    with pytest.raises(ConfigError, match=rf"'deleted-in-the-ui' \(id {exp.experiment_id}\) was deleted; restore it"):
        fit(cfg)
    client.restore_experiment(exp.experiment_id)
    assert fit(cfg).run_id


def test_a_gsnet_run_says_quietly_why_it_has_no_drift_reference(caplog):
    """GSNet's channels come from its importer's layout, which the agent does not read live: that is no warning
    (every fit on the shipped Chicago config printed a 600-character one)."""
    from types import SimpleNamespace

    from cityagent.training.fit import FitResult, log_drift_reference

    result = FitResult({}, "run-1", None, "", task=SimpleNamespace(protocol="gsnet"))
    with caplog.at_level(logging.INFO, logger="cityagent.training.fit"):
        log_drift_reference(result, "sqlite:///unused.db")
    assert [r.levelname for r in caplog.records] == ["INFO"] and "gsnet protocol's channels" in caplog.text
