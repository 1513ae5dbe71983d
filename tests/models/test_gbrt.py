"""The classical GBRT baseline: fit/predict shapes, that it learns, quantiles, and clear errors."""

import numpy as np
import pytest
import torch

from cityagent.errors import ConfigError
from cityagent.models import build_model
from tests.models.inputs import QUANTILES, H, N, common_params, make_x


def data(samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Targets = last value × a per-node gain + a time-of-day bump: learnable from lags, node and calendar."""
    x = make_x(samples, seed=seed).numpy()
    gain = np.linspace(0.5, 1.5, N)
    y = x[:, -1, :, 0][:, None] * gain + np.sin(2 * np.pi * x[:, -1, :, 1])[:, None] + np.arange(H)[None, :, None]
    return x, y  # [S, T, N, F], [S, H, N]


def test_gbrt_learns_and_beats_last_value():
    x, y = data(300, seed=1)
    xt, yt = data(60, seed=2)
    model = build_model("gbrt", n_threads=1, **common_params(), max_iter=60).fit(x, y)
    pred = model.predict(xt)
    assert pred.shape == (60, H, N)
    mae, naive = np.abs(pred - yt).mean(), np.abs(xt[:, -1:, :, 0] - yt).mean()
    assert mae < 0.5 * naive, (mae, naive)


def test_gbrt_quantiles_are_sorted_and_bracket_the_median():
    x, y = data(200, seed=3)
    model = build_model("gbrt", n_threads=1, **common_params(quantiles=QUANTILES), max_iter=20, lags=4).fit(x, y)
    pred = model.predict(x[:10])
    assert pred.shape == (10, H, N, 3) and (np.diff(pred, axis=-1) >= 0).all()


def test_gbrt_errors_say_what_to_do():
    model = build_model("gbrt", n_threads=1, **common_params(), max_iter=5)
    x, y = data(40, seed=4)
    with pytest.raises(ConfigError, match="call fit"):
        model.predict(x)
    with pytest.raises(ConfigError, match="shape"):
        model.fit(x[:, :5], y)
    with pytest.raises(ConfigError, match="shape"):
        model.fit(x, y[:, :1])
    with pytest.raises(ConfigError, match="lags"):
        build_model("gbrt", n_threads=1, **common_params(), lags=99)
    with pytest.raises(ConfigError, match="not been fitted"):
        model.to_torch()


def test_gbrt_in_torch_forecasts_what_the_trees_do():
    x, y = data(200, seed=5)
    model = build_model("gbrt", n_threads=1, **common_params(quantiles=QUANTILES), max_iter=20, lags=4).fit(x, y)
    with torch.no_grad():
        got = model.to_torch()(torch.as_tensor(x[:20])).numpy()  # [S, H, N, Q], sorted along Q as predict sorts
    np.testing.assert_allclose(got, model.predict(x[:20]), atol=1e-6)
