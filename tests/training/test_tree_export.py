"""Tree models in ONNX: the fitted trees translated to torch, exported, checked against scikit-learn itself, served."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import tritonclient.grpc as tc

from cityagent.models import build_model
from cityagent.serving.background import ServerThread
from cityagent.serving.config import ServingConfig
from cityagent.training.classical import ClassicalPredictor
from cityagent.training.export import ExportError, export_bundle
from cityagent.training.onnx_export import build_onnx
from cityagent.training.onnx_meta import read_metadata
from cityagent.training.parity import ort_session
from tests.training.export_factories import X_OFFSET, X_SCALE, Y_OFFSET, Y_SCALE, H, N, build_params, real_windows
from tests.training.export_factories import tiny_bundle as torch_bundle


def fitted(name: str, quantiles: tuple[float, ...] | None = None, **params) -> ClassicalPredictor:
    x, y = real_windows(300, seed=3)
    y = y * 0.2 + 0.8 * x[:, -1:, :, 0]  # learnable: mostly the last speed
    if params.get("loss") == "poisson":  # counts-like: the scaled targets must not be negative
        y = y - min(0.0, float((y * Y_SCALE + Y_OFFSET).min())) / Y_SCALE
    model = build_model(name, **(build_params(quantiles) | params))
    model.fit(x * X_SCALE + X_OFFSET, y * Y_SCALE + Y_OFFSET)
    return ClassicalPredictor(model, X_SCALE, X_OFFSET, Y_SCALE, Y_OFFSET)


def bundle_of(name: str, quantiles: tuple[float, ...] | None = None):
    bundle = torch_bundle("ha", quantiles=quantiles)
    meta = bundle.meta | {"estimator": "estimator.joblib"}
    return dataclasses.replace(bundle, model_name=name, build_params=build_params(quantiles), state_dict={}, meta=meta)


@pytest.mark.parametrize("quantiles", [None, (0.1, 0.5, 0.9)])
def test_gbrt_exports_and_onnx_runtime_forecasts_what_the_trees_do(quantiles, tmp_path):
    predictor = fitted("gbrt", quantiles, max_iter=40, n_threads=1)
    check_onnx(predictor, bundle_of("gbrt", quantiles), quantiles, tmp_path)


# the DiDi table's options: the hourly profile and its level features, the city level, recency weights (so the
# weighted-quantile bin codes), out-of-fold profiles, several seeds
DEMAND = dict(
    tod_channel=1,
    steps_per_day=288,
    city_level=True,
    halflife=60.0,
    profile_folds=3,
    profile_frames="all",
    seeds=2,
    max_iter=30,
    n_threads=1,
)


@pytest.mark.parametrize(
    ("options", "quantiles"),
    [
        (DEMAND, None),
        ({"max_iter": 30, "n_threads": 1}, None),
        (DEMAND | {"conformal": True}, (0.1, 0.5, 0.9)),
        (DEMAND | {"loss": "poisson"}, None),
        (DEMAND | {"profile_rank": 2}, None),
    ],
    ids=["didi-options", "plain", "didi-options-conformal-quantiles", "didi-options-poisson", "didi-low-rank-profile"],
)
def test_gbrt_demand_exports_its_features_bins_and_trees(options, quantiles, tmp_path):
    predictor = fitted("gbrt_demand", quantiles, **options)
    assert (predictor.estimator.bins is not None) == ("halflife" in options)
    check_onnx(predictor, bundle_of("gbrt_demand", quantiles), quantiles, tmp_path)


def check_onnx(predictor: ClassicalPredictor, bundle, quantiles, tmp_path) -> None:
    name = bundle.model_name
    x, _ = real_windows(40, seed=4)
    if name == "gbrt":  # a missing speed in a lag: the trees send it where training sent missing values
        x[::5, -2, 1, 0] = np.nan  # (gbrt_demand's baseline averages the frames: a missing one has no forecast)
    path = export_bundle(bundle, tmp_path / f"{name}.onnx", sample_x=x[:8], estimator=predictor)
    proto = onnx.load(str(path))
    assert "TreeEnsemble" in {n.op_type for n in proto.graph.node}  # ONNX Runtime's own tree kernel
    meta = read_metadata(proto)
    assert meta["model_name"] == name and meta["output_shape"] == [-1, H, N, *([3] if quantiles else [])]
    session = ort_session(str(path))
    want = predictor(x)
    for batch in (x, x[:1]):
        got = session.run(None, {"x": batch})[0]
        np.testing.assert_allclose(got, want[: len(batch)], rtol=1e-5, atol=1e-4)  # km/h
    assert np.isfinite(want).all() and (np.isnan(x).any() or name != "gbrt")


def test_tree_export_refuses_what_it_cannot_translate():
    with pytest.raises(ExportError, match="fitted estimator"):
        build_onnx(bundle_of("gbrt"))  # no estimator given
    opaque = ClassicalPredictor(SimpleNamespace(), X_SCALE, X_OFFSET, Y_SCALE, Y_OFFSET)  # no to_torch
    with pytest.raises(ExportError, match="no ONNX translation yet"):
        build_onnx(bundle_of("gbrt"), estimator=opaque)
    unfitted = ClassicalPredictor(build_model("gbrt", **build_params()), X_SCALE, X_OFFSET, Y_SCALE, Y_OFFSET)
    with pytest.raises(ExportError, match="not been fitted"):
        build_onnx(bundle_of("gbrt"), estimator=unfitted)


def test_a_served_tree_model_answers_what_the_trees_forecast(tmp_path):
    predictor = fitted("gbrt_demand", **DEMAND)
    x, _ = real_windows(6, seed=5)
    path = export_bundle(bundle_of("gbrt_demand"), tmp_path / "demand.onnx", sample_x=x, estimator=predictor)
    config = {"port": 0, "metrics_port": None, "models": [f"demand-tiny={path}"], "registry": {"poll_interval_s": 0}}
    server = ServerThread(ServingConfig.model_validate(config)).start()
    try:
        with tc.InferenceServerClient(server.address) as client:
            tensor = tc.InferInput("x", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x)
            got = client.infer("demand-tiny", [tensor]).as_numpy("y")  # over gRPC, as a service asks
    finally:
        server.stop()
    np.testing.assert_allclose(got, predictor(x), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("calibrate", [True, False])
def test_risk_gbrt_exports_its_window_features_classifier_and_calibration(calibrate, tmp_path):
    from tests.models.test_risk_gbrt import GRID, gsnet_windows
    from tests.models.test_risk_gbrt import params as risk_params

    x, y, _ = gsnet_windows(400, seed=5)
    model = build_model("risk_gbrt", **risk_params(calibrate=calibrate)).fit(x, y)
    f = x.shape[-1]
    predictor = ClassicalPredictor(model, np.ones(f), np.zeros(f), 1.0, 0.0)  # GSNet's risk data is unscaled
    base = bundle_of("risk_gbrt")
    n = GRID[0] * GRID[1]
    meta = base.meta | {
        "nodes": [f"c{i}" for i in range(n)],
        "input_len": x.shape[1],
        "horizon": 1,
        "feature_names": [f"f{i}" for i in range(f)],
        "domain": "risk",
    }
    xs = {"kind": "standard", "scale": [1.0] * f, "offset": [0.0] * f}
    bundle = dataclasses.replace(
        base, meta=meta, x_scaler=xs, y_scaler={"kind": "standard", "scale": [1.0], "offset": [0.0]}
    )
    xt, _, _ = gsnet_windows(24, seed=6, start=400)
    path = export_bundle(bundle, tmp_path / "risk.onnx", sample_x=xt[:8], estimator=predictor)
    got = ort_session(str(path)).run(None, {"x": xt})[0]
    np.testing.assert_allclose(got, predictor(xt), rtol=1e-5, atol=1e-5)
    assert read_metadata(onnx.load(str(path)))["output_shape"] == [-1, 1, n]
