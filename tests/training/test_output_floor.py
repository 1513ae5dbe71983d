"""A target that is never negative (trips, risk, km/h) gets no negative forecast or lower bound: torch, trees, ONNX."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cityagent.models.scaled import ScaledModel
from cityagent.training.build import target_floor
from cityagent.training.classical import ClassicalPredictor
from cityagent.training.export import export_bundle
from cityagent.training.losses import MaskedMAE
from cityagent.training.module import ForecastModule
from cityagent.training.parity import ort_session
from tests.training.export_factories import real_windows, tiny_bundle


class Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, N, 3] -> [B, H=T, N, Q=3]
        return x


def test_floor_clips_points_and_every_level_keeping_them_ordered():
    x = torch.tensor([[-3.0, -1.0, 2.0], [-0.5, 0.5, 1.0]]).reshape(1, 2, 1, 3)
    model = ScaledModel(Identity(), np.ones(3), np.zeros(3), 1.0, 0.0).set_margin(np.array([1.0, 0.0]))
    plain = model(x)
    assert (plain < 0).any()  # the widened lower level of a low count falls below zero
    model.set_floor(0.0)
    got = model(x)
    assert torch.equal(got, plain.clamp_min(0.0))
    assert (got.diff(dim=-1) >= 0).all()
    again = ScaledModel(Identity(), np.ones(3), np.zeros(3), 1.0, 0.0).set_margin(np.zeros(2)).set_floor(0.0)
    again.load_state_dict(model.state_dict())  # the floor travels in the state dict, like the margin
    assert torch.equal(again(x), got)
    assert "floor" not in ScaledModel(Identity(), np.ones(3), np.zeros(3), 1.0, 0.0).state_dict()  # no clip: as before


def _negative_bundle(floor: bool):
    """A GRU bundle whose un-scaling puts most outputs below zero (offset +5 in the scaled space)."""
    bundle = tiny_bundle("gru", quantiles=(0.1, 0.5, 0.9))
    state = dict(bundle.state_dict) | {"y_offset": torch.tensor(5.0)}
    if floor:
        state["floor"] = torch.tensor(0.0)
    y_scaler = {"kind": "standard", "scale": [0.05], "offset": [5.0]}
    return dataclasses.replace(bundle, state_dict=state, y_scaler=y_scaler)


def test_bundles_and_their_onnx_files_keep_the_floor(tmp_path):
    x, _ = real_windows()
    with torch.no_grad():
        plain = _negative_bundle(floor=False).build()(torch.as_tensor(x)).numpy()
        clipped = _negative_bundle(floor=True).build()(torch.as_tensor(x)).numpy()
    assert (plain < 0).mean() > 0.5  # the check means something
    np.testing.assert_array_equal(clipped, np.maximum(plain, 0))
    path = export_bundle(_negative_bundle(floor=True), tmp_path / "m.onnx", sample_x=x)
    sess = ort_session(path.read_bytes())
    served = sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]
    assert served.min() >= 0
    np.testing.assert_allclose(served, clipped, rtol=1e-4, atol=1e-4)


def test_classical_predictor_clips_and_old_pickles_do_not():
    estimator = SimpleNamespace(predict=lambda xs: np.array([[[-2.0, 3.0]]]))  # [S=1, H=1, N=2], scaled space
    x = np.zeros((1, 2, 2, 1))
    assert ClassicalPredictor(estimator, [1.0], [0.0], 1.0, 0.0, floor=0.0)(x).tolist() == [[[0.0, 3.0]]]
    old = ClassicalPredictor(estimator, [1.0], [0.0], 1.0, 0.0, floor=0.0)
    del old.floor  # as joblib restores a predictor saved before the floor existed
    assert old(x).tolist() == [[[-2.0, 3.0]]]


def test_the_floor_comes_from_the_training_targets_only(tiny_cfg):
    from cityagent.training.task import load_task

    task, _ = load_task(tiny_cfg().task)
    assert target_floor(task) == 0.0  # speeds
    train = task.train
    targets = set((train.anchors[:, None] + np.asarray(train.spec.target_offsets)[None, :]).ravel().tolist())
    y = train.y.copy()
    y[min(targets), 0] = -1.0  # one negative training target: the quantity may be negative, nothing is clipped
    assert target_floor(dataclasses.replace(task, train=dataclasses.replace(train, y=y))) is None
    y = train.y.copy()
    y[len(y) - 1, 0] = -1.0  # a negative value in the series' last step, after every training target
    assert len(y) - 1 not in targets
    assert target_floor(dataclasses.replace(task, train=dataclasses.replace(train, y=y))) == 0.0


@pytest.mark.usefixtures("shared_mlflow_store")
def test_a_fitted_model_records_its_floor(tiny_cfg):
    from cityagent.training.bundle import ModelBundle
    from cityagent.training.fit import fit

    result = fit(tiny_cfg())
    assert float(ModelBundle.load(result.bundle_path).state_dict["floor"]) == 0.0


class _Logged(ForecastModule):
    def log(self, name, value, **_):  # what Lightning would log, kept to read back
        self.logged = {**getattr(self, "logged", {}), name: float(value)}


def test_validation_mae_scores_the_clipped_forecast_like_test():
    x = torch.tensor([[-2.0, 1.0, 3.0]]).reshape(1, 1, 3, 1)  # one step, 3 nodes: the forecast is the input
    y, mask = torch.zeros(1, 1, 3), torch.ones(1, 1, 3)

    def val_mae(floor):
        net = ScaledModel(torch.nn.Flatten(-2), np.ones(1), np.zeros(1), 1.0, 0.0).set_floor(floor)
        module = _Logged(net, MaskedMAE())
        module.validation_step((x, y, mask), 0)
        return module.logged["val_mae"]

    assert val_mae(None) == pytest.approx((2 + 1 + 3) / 3)
    assert val_mae(0.0) == pytest.approx((0 + 1 + 3) / 3)  # the -2 is answered as 0, so scored as 0
