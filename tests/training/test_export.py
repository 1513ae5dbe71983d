"""ONNX export: every registered torch model exports with scaling in the graph, metadata, and parity; the
MLflow path logs into the training run, registers a challenger, and refuses (registering nothing) on failure."""

import os
from pathlib import Path

import mlflow
import numpy as np
import onnx
import pytest
import torch

from cityagent.errors import CityAgentError
from cityagent.models import list_models, model_info
from cityagent.models.conformal import widen
from cityagent.training import parity
from cityagent.training.export import ExportError, export_bundle, export_run
from cityagent.training.onnx_export import build_onnx
from cityagent.training.onnx_meta import read_metadata
from cityagent.training.parity import ort_session
from cityagent.training.registry import history, list_versions
from tests.training.export_factories import (
    FEATURES,
    T_IN,
    H,
    N,
    log_training_run,
    real_windows,
    sqlite_store,
    tiny_bundle,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with sqlite_store(tmp_path_factory.mktemp("mlflow")) as s:
        yield s


@pytest.mark.parametrize("name", list_models())
def test_every_model_exports_in_real_units_with_metadata(name, tmp_path):
    if model_info(name).kind == "classical":
        with pytest.raises(ExportError, match="fitted estimator"):
            build_onnx(tiny_bundle(name))
        pytest.skip(f"{name} is a classical estimator: tests/training/test_tree_export.py exports the fitted ones")
    bundle = tiny_bundle(name)
    x, _ = real_windows()
    path = export_bundle(bundle, tmp_path / "m.onnx", sample_x=x)

    meta = read_metadata(onnx.load(str(path)))
    assert meta["task"] == "traffic-tiny" and meta["model_name"] == name
    assert meta["nodes"] == [f"s{i}" for i in range(N)] and meta["feature_names"] == FEATURES
    assert (meta["input_len"], meta["horizon"], meta["step"]) == (T_IN, H, "5min")
    assert meta["input_names"] == ["x"] and meta["output_names"] == ["y"]
    assert meta["input_shape"] == [-1, T_IN, N, len(FEATURES)] and meta["output_shape"] == [-1, H, N]

    session = ort_session(str(path))
    assert session.get_inputs()[0].name == "x" and isinstance(session.get_inputs()[0].shape[0], str)  # dynamic
    with torch.no_grad():
        want = bundle.build()(torch.from_numpy(x)).numpy()  # real units, km/h
    for batch in (x, x[:1]):
        got = session.run(None, {"x": batch})[0]
        assert got.shape == (len(batch), H, N)
        assert parity.relative_diff(want[: len(batch)], got) <= 1e-4
    if model_info(name).kind == "deep":  # un-scaling is in the graph: outputs are not the net's scaled values
        with torch.no_grad():
            scaled = bundle.build().forward_scaled(torch.from_numpy(x)).numpy()
        assert not np.allclose(got, scaled[:1], atol=1e-2)


def test_quantile_model_exports_quantile_axis(tmp_path):
    bundle = tiny_bundle("gru", quantiles=(0.1, 0.5, 0.9))
    path = export_bundle(bundle, tmp_path / "q.onnx")  # no sample given: noise through the x-scaler's inverse
    x, _ = real_windows()
    assert parity.run_onnx(str(path), x).shape == (len(x), H, N, 3)
    assert read_metadata(path)["quantiles"] == [0.1, 0.5, 0.9]


def test_calibrated_quantile_model_exports_its_margin(tmp_path):
    bundle = tiny_bundle("gru", quantiles=(0.1, 0.5, 0.9))
    plain = bundle.build()
    margin = np.linspace(0.5, 1.5, H).astype(np.float32)
    bundle.state_dict = bundle.build().set_margin(margin).state_dict()
    x, _ = real_windows()
    got = parity.run_onnx(str(export_bundle(bundle, tmp_path / "c.onnx", sample_x=x)), x)
    with torch.no_grad():
        want = widen(plain(torch.from_numpy(x)), torch.from_numpy(margin)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert not np.allclose(got, plain(torch.from_numpy(x)).detach().numpy(), atol=0.1)


def test_noise_samples_are_standard_normal_after_scaling():
    b = tiny_bundle("gru")
    x = parity.sample_inputs(b.x_scaler["scale"], b.x_scaler["offset"], (T_IN, N, len(FEATURES)), n=64)
    z = x * np.asarray(b.x_scaler["scale"]) + np.asarray(b.x_scaler["offset"])
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05


def test_bad_sample_and_missing_meta_are_export_errors():
    with pytest.raises(ExportError, match="shape"):
        build_onnx(tiny_bundle("gru"), np.zeros((2, T_IN, N + 1, len(FEATURES))))
    bundle = tiny_bundle("gru")
    del bundle.meta["nodes"]
    with pytest.raises(ExportError, match="nodes"):
        build_onnx(bundle)
    for bad in (-1.0, float("nan"), float("inf")):  # not "parity failed: difference 0 > tolerance -1"
        with pytest.raises(ExportError, match=r"is not a relative difference; pass a number ≥ 0"):
            build_onnx(tiny_bundle("gru"), tolerance=bad)
    assert issubclass(ExportError, CityAgentError)


def test_export_run_logs_into_the_run_and_registers_a_challenger(store, monkeypatch):
    run_id = log_training_run(store.client, store.experiment_id, tiny_bundle("gru", task="traffic-export"), store.root)
    env_before = os.environ.get("MLFLOW_TRACKING_URI")
    res = export_run(run_id, tracking_uri=store.uri, actor="ci")
    assert os.environ.get("MLFLOW_TRACKING_URI") == env_before  # MLflow's global-URI dance leaves the env alone

    assert res.version == "1" and res.model_uri == "models:/traffic-export/1" and res.parity <= 1e-4
    assert res.onnx_path.is_file() and read_metadata(res.onnx_path)["run_id"] == run_id
    mv = store.client.get_model_version_by_alias("traffic-export", "challenger")
    assert str(mv.version) == "1" and mv.run_id == run_id
    [move] = history("traffic-export", tracking_uri=store.uri)
    assert (move.action, move.alias, move.to_version, move.actor) == ("export", "challenger", "1", "ci")
    assert move.metrics == {"test_mae": 3.0, "test_rmse": 4.0}
    metrics = store.client.get_run(run_id).data.metrics
    assert metrics["onnx_parity_rel_diff"] <= 1e-4 and metrics["onnx_size_mb"] > 0

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)  # models:/ URIs resolve through the registry URI
    local = mlflow.artifacts.download_artifacts("models:/traffic-export@challenger")
    served = Path(local) / "model.onnx"
    assert read_metadata(served)["task"] == "traffic-export"
    x, _ = real_windows()
    assert parity.relative_diff(parity.run_onnx(str(res.onnx_path), x), parity.run_onnx(str(served), x)) == 0.0


def test_broken_parity_raises_and_registers_nothing(store, monkeypatch):
    run_id = log_training_run(store.client, store.experiment_id, tiny_bundle("tgcn", task="traffic-broken"), store.root)

    def state():
        logged = [m.model_id for m in store.client.search_logged_models([store.experiment_id])]
        return list_versions(tracking_uri=store.uri), logged

    before = state()
    real_run = parity.run_onnx
    monkeypatch.setattr(parity, "run_onnx", lambda m, x: real_run(m, x) * 1.01)  # a 1 % disagreement
    with pytest.raises(ExportError, match="disagrees"):
        export_run(run_id, tracking_uri=store.uri)
    assert state() == before
    assert "traffic-broken" not in [m.name for m in store.client.search_registered_models()]
    assert "onnx_parity_rel_diff" not in store.client.get_run(run_id).data.metrics


def test_missing_corrupt_or_unknown_bundle_is_a_clear_error(store):
    no_bundle = log_training_run(store.client, store.experiment_id, None, store.root)
    with pytest.raises(ExportError, match=r"bundle/model\.pt"):
        export_run(no_bundle, tracking_uri=store.uri)
    corrupt = log_training_run(
        store.client, store.experiment_id, tiny_bundle("gru"), store.root, bundle_bytes=b"not a torch file"
    )
    with pytest.raises(ExportError, match="corrupt"):
        export_run(corrupt, tracking_uri=store.uri)
    with pytest.raises(ExportError, match="no run"):
        export_run("0123456789abcdef0123456789abcdef", tracking_uri=store.uri)


@pytest.mark.parametrize("name", ["gru", "risk_conv"])  # their traced graphs end in a Cast of unknown size
def test_export_run_sizes_every_output_axis_but_the_batch(store, name):
    """Left symbolic (['batch', 'Casty_dim_1', 'Casty_dim_2']), the served shape read [-1, -1, -1] and a server
    could not tell that a new version forecast another horizon."""
    bundle = tiny_bundle(name, task=f"static-{name}")
    run_id = log_training_run(store.client, store.experiment_id, bundle, store.root)
    res = export_run(run_id, tracking_uri=store.uri, register=False)
    dims = onnx.load(str(res.onnx_path)).graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", H, N]
    assert ort_session(str(res.onnx_path)).get_outputs()[0].shape == ["batch", H, N]
    signature = mlflow.models.get_model_info(res.model_uri).signature
    assert signature.outputs.inputs[0].shape == (-1, H, N)
    x, _ = real_windows()
    assert parity.run_onnx(str(res.onnx_path), x).shape == (len(x), H, N)
