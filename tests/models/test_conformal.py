"""Split-conformal calibration of quantile intervals: the margin restores nominal coverage, both ways."""

import numpy as np
import pytest
import torch

from cityagent.errors import ConfigError
from cityagent.models.conformal import cqr_margin, widen
from cityagent.models.scaled import ScaledModel

LEVELS = (0.1, 0.5, 0.9)


def intervals(rng: np.random.Generator, s: int, half_width: float) -> tuple[np.ndarray, np.ndarray]:
    """Targets ~ N(0, 1) [S, 2, 5] and a fixed interval ±``half_width`` around 0 (true 80 %: ±1.2816)."""
    y = rng.standard_normal((s, 2, 5))
    pred = np.stack([np.full_like(y, -half_width), np.zeros_like(y), np.full_like(y, half_width)], -1)
    return pred, y


def coverage(pred: np.ndarray, y: np.ndarray) -> float:
    return float(((y >= pred[..., 0]) & (y <= pred[..., -1])).mean())


@pytest.mark.parametrize("half_width", [0.5, 3.0])  # too narrow (38 %) and too wide (99.7 %)
def test_margin_brings_fresh_coverage_to_nominal(half_width):
    rng = np.random.default_rng(0)
    margin = cqr_margin(*intervals(rng, 2000, half_width), LEVELS)
    assert margin.shape == (2,) and np.all(np.sign(margin) == np.sign(1.2816 - half_width))
    pred, y = intervals(rng, 4000, half_width)  # new draws from the same distribution
    got = widen(torch.from_numpy(pred), torch.from_numpy(margin)).numpy()
    assert coverage(pred, y) == pytest.approx(0.38 if half_width < 1 else 0.997, abs=0.02)
    assert coverage(got, y) == pytest.approx(0.80, abs=0.015)


def test_masked_targets_do_not_count():
    rng = np.random.default_rng(1)
    pred, y = intervals(rng, 500, 1.0)
    y_bad = y.copy()
    y_bad[:, :, 0] = 1e6  # a sensor that is not evaluated (or not observed)
    mask = np.ones(y.shape, dtype=bool)
    mask[:, :, 0] = False
    np.testing.assert_allclose(cqr_margin(pred, y_bad, LEVELS, mask), cqr_margin(pred[:, :, 1:], y[:, :, 1:], LEVELS))


def test_widen_keeps_levels_sorted_when_it_narrows():
    pred = torch.tensor([[[[-1.0, 0.0, 1.0]]]])  # [B=1, H=1, N=1, Q=3]
    out = widen(pred, torch.tensor([-1.5]))  # would put the lower bound above the upper
    assert torch.all(out[..., 1:] >= out[..., :-1])


def test_bad_inputs_are_named():
    rng = np.random.default_rng(2)
    pred, y = intervals(rng, 10, 1.0)
    with pytest.raises(ConfigError, match="≥ 2 quantile levels"):
        cqr_margin(pred[..., 1:2], y, (0.5,))
    with pytest.raises(ValueError, match="do not match"):
        cqr_margin(pred, y[:, :1], LEVELS)
    with pytest.raises(ConfigError, match="step 2 has 0"):
        cqr_margin(pred, y, LEVELS, np.broadcast_to(np.array([True, False])[None, :, None], y.shape))


class Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, N, 3] -> [B, H=T, N, Q=3]
        return x


def test_scaled_model_applies_and_saves_its_margin():
    model = ScaledModel(Identity(), np.ones(3), np.zeros(3), 2.0, 0.0)
    x = torch.tensor([[[[-1.0, 0.0, 1.0]]], [[[-2.0, 0.0, 2.0]]]]).reshape(1, 2, 1, 3)  # real units ×2 in, ÷2 out
    assert "margin" not in model.state_dict()  # point and uncalibrated models are unchanged
    plain = model(x)
    model.set_margin(np.array([0.25, -0.25]))
    got = model(x)
    assert torch.allclose(got[0, 0, 0], plain[0, 0, 0] + torch.tensor([-0.25, 0.0, 0.25]))
    assert torch.allclose(got[0, 1, 0], plain[0, 1, 0] + torch.tensor([0.25, 0.0, -0.25]))
    again = ScaledModel(Identity(), np.ones(3), np.zeros(3), 2.0, 0.0).set_margin(np.zeros(2))
    again.load_state_dict(model.state_dict())
    assert torch.equal(again(x), got)


def test_scaled_model_takes_read_only_scalers_without_a_warning(recwarn):
    # scalers come read-only out of Ray's object store; torch warned once per worker and would share the memory
    scale, offset = np.full(3, 2.0), np.zeros(3)
    scale.flags.writeable = offset.flags.writeable = False
    model = ScaledModel(Identity(), scale, offset, 2.0, 0.0)
    assert [str(w.message) for w in recwarn if "not writable" in str(w.message)] == []
    model.x_scale.mul_(3)  # the buffer is the model's own
    assert scale[0] == 2.0
