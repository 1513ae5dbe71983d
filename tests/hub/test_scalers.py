"""Scalers: affine per channel, NaN/unobserved ignored when fitting, invertible, serialisable."""

import json

import numpy as np
import pytest

from cityagent.errors import ConfigError, HubError
from cityagent.hub.scalers import SCALERS, MaxScaler, MinMaxScaler, Scaler, StandardScaler, make_scaler


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(50, 4, 3)) * [1, 10, 100] + [0, 5, 50]).astype(np.float32)  # [T, N, C]


@pytest.mark.parametrize("kind", list(SCALERS))
def test_affine_invertible_and_serialisable(kind):
    x = _data()
    s = make_scaler(kind).fit(x)
    z = s.transform(x)
    assert z.dtype == np.float32 and s.scale.shape == s.offset.shape == (3,)
    np.testing.assert_allclose(z, x * s.scale + s.offset, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s.inverse(z), x, rtol=1e-5, atol=1e-3)
    back = Scaler.from_dict(json.loads(json.dumps(s.to_dict())))
    assert type(back) is type(s)
    np.testing.assert_array_equal(back.transform(x), z)


def test_fitted_statistics():
    x = _data()
    mm = MinMaxScaler().fit(x).transform(x)
    np.testing.assert_allclose(mm.reshape(-1, 3).min(0), 0, atol=1e-6)
    np.testing.assert_allclose(mm.reshape(-1, 3).max(0), 1, atol=1e-6)
    st = StandardScaler().fit(x).transform(x).reshape(-1, 3)
    np.testing.assert_allclose(st.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(st.std(0), 1, atol=1e-4)
    mx = MaxScaler().fit(np.abs(x))
    np.testing.assert_allclose(mx.scale, 1 / np.abs(x).reshape(-1, 3).max(0), rtol=1e-6)
    assert (mx.offset == 0).all()


def test_fit_ignores_nan_and_unobserved_entries():
    x = _data()
    dirty = x.copy()
    dirty[0, 0, 0] = np.nan
    dirty[1, 1, 1] = 1e9  # present but marked unobserved
    observed = np.ones_like(x, dtype=bool)
    observed[1, 1, 1] = False
    clean = x.copy()
    clean_mask = observed.copy()
    clean_mask[0, 0, 0] = False
    a = MinMaxScaler().fit(dirty, observed)
    b = MinMaxScaler().fit(clean, clean_mask)
    np.testing.assert_array_equal(a.scale, b.scale)
    np.testing.assert_array_equal(a.offset, b.offset)


def test_selected_channels_only_others_pass_through():
    x = _data()
    s = MinMaxScaler(channels=[1]).fit(x)
    z = s.transform(x)
    np.testing.assert_array_equal(z[..., [0, 2]], x[..., [0, 2]])
    assert z[..., 1].min() == pytest.approx(0) and z[..., 1].max() == pytest.approx(1)


def test_one_channel_scaler_broadcasts_over_any_shape():
    y = _data()[:, :, 0]  # [T, N]
    s = StandardScaler().fit(y[:, :, None])
    np.testing.assert_allclose(s.inverse(s.transform(y)), y, atol=1e-4)


def test_constant_channel_and_errors():
    x = np.ones((5, 2, 1), dtype=np.float32)
    np.testing.assert_array_equal(MinMaxScaler().fit(x).transform(x), 0)  # shifted, never divided by 0
    with pytest.raises(ConfigError, match="not fitted"):
        MinMaxScaler().transform(x)
    with pytest.raises(ConfigError, match="unknown scaler"):
        make_scaler("robust")
    with pytest.raises(HubError, match="no observed values"):
        MinMaxScaler().fit(np.full((3, 1), np.nan))
    with pytest.raises(ConfigError, match="channels"):
        MinMaxScaler().fit(_data()).transform(np.zeros((2, 2)))
