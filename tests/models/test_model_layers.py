"""Baselines compute what their papers say; shared layers keep their promises (monotone quantiles, norms)."""

import numpy as np
import pytest
import torch

from cityagent.errors import ConfigError
from cityagent.models import build_model
from cityagent.models.layers.calendar import resolve_calendar
from cityagent.models.layers.graph import double_transition, sym_norm_adjacency
from cityagent.models.layers.quantile_head import QuantileOutput
from tests.models.inputs import QUANTILES, common_params, grid_adjacency, make_x


def test_ha_is_the_window_mean_and_its_quantiles_match_torch_quantile():
    x = make_x(3)
    mean = build_model("ha", **common_params())(x)
    torch.testing.assert_close(mean, x[..., 0].mean(1, keepdim=True).expand(-1, 3, -1))
    q = build_model("ha", **common_params(quantiles=QUANTILES))(x)
    want = torch.quantile(x[..., 0], torch.tensor(QUANTILES), dim=1).permute(1, 2, 0)  # [B, N, Q]
    torch.testing.assert_close(q[:, 0], want)
    torch.testing.assert_close(q[:, 2], want)


def test_hm_and_risk_ha_average_the_chosen_frames_only():
    x = make_x(2)
    for name in ("hm", "risk_ha"):
        y = build_model(name, **common_params(), frames=(0, -1))(x)
        torch.testing.assert_close(y[:, 1], (x[:, 0, :, 0] + x[:, -1, :, 0]) / 2)


def test_last_value_repeats_the_last_target():
    x = make_x(2)
    y = build_model("last_value", **common_params(target_channel=1, quantiles=QUANTILES))(x)
    torch.testing.assert_close(y, x[:, -1, :, 1][:, None, :, None].expand(-1, 3, -1, 3))


def test_quantile_head_is_monotone_and_predicts_the_median_directly():
    head = QuantileOutput(horizon=2, quantiles=(0.05, 0.25, 0.5, 0.75, 0.95))
    raw = torch.randn(4, 6, 2 * 5) * 50  # extreme raw values may tie (softplus underflow) but never cross
    out = head(raw)  # [B, H, N, Q]
    assert out.shape == (4, 2, 6, 5) and (out.diff(dim=-1) >= 0).all()
    assert (head(raw / 50).diff(dim=-1) > 0).all()
    torch.testing.assert_close(out[..., 2], raw.reshape(4, 6, 2, 5)[..., 2].transpose(1, 2))


def test_adjacency_normalisations_follow_their_papers():
    a = grid_adjacency(2, 2)
    lap = sym_norm_adjacency(a).numpy()
    deg = a.sum(1) + 1
    np.testing.assert_allclose(lap, (a + np.eye(4)) / np.sqrt(deg[:, None] * deg[None, :]), rtol=1e-6)
    p = double_transition(a).numpy()
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-6)


def test_calendar_layout_defaults_to_the_last_eight_channels():
    assert resolve_calendar(9, None, None) == (1, (2, 3, 4, 5, 6, 7, 8))
    assert resolve_calendar(12, -8, None) == (4, (5, 6, 7, 8, 9, 10, 11))


def test_stid_reads_time_of_day_and_day_of_week():
    model = build_model("stid", **common_params(), steps_per_day=96).eval()
    x = make_x(2)
    shifted = x.clone()
    shifted[..., 1] = (shifted[..., 1] + 0.25) % 1.0
    other_day = x.clone()
    other_day[..., 2:] = other_day[..., 2:].roll(1, dims=-1)
    assert not torch.allclose(model(x), model(shifted))
    assert not torch.allclose(model(x), model(other_day))


def test_stid_reads_one_hot_hours_as_calendar_not_values():
    # GSNet's risk layout: 0 risk, 1–24 one-hot hour, 25–31 one-hot weekday, then other values
    f = 34
    hours, days = list(range(1, 25)), list(range(25, 32))
    model = build_model(
        "stid", **common_params(in_features=f), steps_per_day=24, hour_channels=hours, dow_channels=days
    ).eval()
    assert model.value_idx.tolist() == [0, 32, 33]  # the calendar one-hots are not embedded as values
    x = torch.zeros(2, common_params()["input_len"], common_params()["num_nodes"], f)
    x[..., 0], x[..., 32:] = torch.rand(x.shape[:-1]), torch.rand(*x.shape[:-1], 2)
    x[..., 1 + 8], x[..., 25 + 2] = 1.0, 1.0  # 08:00 on a Wednesday
    later, other_day = x.clone(), x.clone()
    later[..., 1 + 8], later[..., 1 + 17] = 0.0, 1.0
    other_day[..., 25 + 2], other_day[..., 25 + 5] = 0.0, 1.0
    tod = model.calendar(x[:, -1])[..., : model.calendar.tod.shape[1]]  # the hour's part of the embedding
    torch.testing.assert_close(tod, model.calendar.tod[8].expand_as(tod))
    assert not torch.allclose(model(x), model(later)) and not torch.allclose(model(x), model(other_day))
    for bad, match in (
        (dict(hour_channels=hours[:23], dow_channels=days), "must be 24 distinct one-hot hour channels"),
        (dict(hour_channels=[*hours[1:], 25], dow_channels=days), "apart from the day-of-week channels"),
        (dict(hour_channels=hours, dow_channels=days, tod_channel=0), "tod_channel or hour_channels, not both"),
        (dict(hour_channels=hours), "needs dow_channels"),
        (dict(hour_channels=hours, dow_channels=days, steps_per_day=96), "steps_per_day must be 24"),
    ):
        with pytest.raises(ConfigError, match=match):
            build_model("stid", **common_params(in_features=f), **({"steps_per_day": 24} | bad))
