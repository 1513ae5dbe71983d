"""gbrt_demand: cell features, the hourly profile and its level features, HM-residual learning, clear errors."""

import functools

import numpy as np
import pytest
import torch

from cityagent.errors import ConfigError
from cityagent.models import build_model
from cityagent.models.demand.cell_features import CellFeatures, SlotProfile, neighbour_weights
from tests.models.inputs import GRID, H, N, common_params, grid_adjacency, make_x

FRAMES = dict(closeness_frames=[9, 10, 11], period_frames=[4, 5, 6, 7, 8], trend_frames=[0, 1, 2, 3])


def demand_data(samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Targets = HM of frames 3, 8, 11 + a per-node offset + a daytime bump: learnable as a residual to HM."""
    x = make_x(samples, seed=seed).numpy()
    hm = x[..., 0][:, [3, 8, 11]].mean(1)  # [S, N]
    bump = np.sin(2 * np.pi * x[:, -1, :, 1])  # time of day of the last step
    y = hm + np.linspace(-1.0, 1.0, N) + bump
    return x, np.repeat(y[:, None], H, axis=1)  # [S, T, N, F], [S, H, N]


def test_neighbour_weights_average_the_grid_neighbours_only():
    w = neighbour_weights(grid_adjacency(*GRID) + np.eye(N))
    assert np.allclose(np.diag(w), 0.0) and np.allclose(w.sum(1), 1.0)
    assert np.allclose(w[4, [1, 3, 5, 7]], 0.25)  # the centre cell's four neighbours


def test_cell_features_columns_match_their_definitions():
    x = make_x(2).numpy()
    feats = CellFeatures.build(12, N, 9, 0, **FRAMES, base_frames=[3, 8, 11], adjacency=grid_adjacency(*GRID))
    out = feats(x).reshape(2, N, -1)
    assert out.shape[-1] == feats.width == 12 + 1 + 3 + 2 + 4 + 8 + 1
    assert np.array_equal(out * 2**20, np.round(out * 2**20))  # on the grid that keeps exported splits exact
    v = x[..., 0]
    allclose = functools.partial(np.allclose, atol=2.0**-21)  # half a grid step
    isclose = functools.partial(np.isclose, atol=2.0**-21)
    assert allclose(out[..., :12], v.transpose(0, 2, 1))  # lags
    assert allclose(out[..., 12], v[:, [3, 8, 11]].mean(1))  # HM
    assert allclose(out[..., 14], v[:, 4:9].mean(1))  # period mean
    assert allclose(out[..., 16], v[:, 11] - v[:, 8])  # last frame minus last period frame
    corner = 0.5 * (v[0, [3, 8, 11], 1] + v[0, [3, 8, 11], 3])  # cell 0's neighbours are cells 1 and 3
    assert allclose(out[0, 0, 18:21], corner) and isclose(out[0, 0, 21], corner.mean())
    assert allclose(out[..., -1], np.arange(N)) and allclose(out[..., -9], x[:, -1, :, 1])  # node, tod
    with pytest.raises(ConfigError, match="shape"):
        feats(x[:, :5])


def test_gbrt_demand_learns_the_residual_and_beats_hm():
    x, y = demand_data(300, seed=1)
    xt, yt = demand_data(60, seed=2)
    params = common_params() | FRAMES
    model = build_model("gbrt_demand", n_threads=1, base_frames=[3, 8, 11], max_iter=60, **params).fit(x, y)
    pred = model.predict(xt)
    assert pred.shape == (60, H, N)
    hm = xt[..., 0][:, [3, 8, 11]].mean(1)[:, None]
    assert np.abs(pred - yt).mean() < 0.4 * np.abs(hm - yt).mean()


def test_gbrt_demand_quantiles_bracket_the_noise_around_the_baseline():
    rng = np.random.default_rng(7)
    (x, y), (xt, yt) = demand_data(300, seed=1), demand_data(100, seed=2)
    y, yt = y + rng.normal(0, 0.5, y.shape), yt + rng.normal(0, 0.5, yt.shape)
    params = common_params(quantiles=(0.1, 0.5, 0.9)) | FRAMES | dict(base_frames=[3, 8, 11], n_threads=1)
    model = build_model("gbrt_demand", max_iter=60, seeds=2, **params).fit(x, y)
    pred = model.predict(xt)
    assert pred.shape == (100, H, N, 3) and (np.diff(pred, axis=-1) >= 0).all()
    inside = ((pred[..., 0] <= yt) & (yt <= pred[..., 2])).mean()
    assert 0.65 < inside < 0.92, inside  # an 80 % interval, learnt from 300 windows
    hm = xt[..., 0][:, [3, 8, 11]].mean(1)[:, None]
    assert np.abs(pred[..., 1] - yt).mean() < 0.6 * np.abs(hm - yt).mean()
    median = build_model("gbrt_demand", max_iter=20, **(params | {"quantiles": (0.5,)})).fit(x, y)
    with torch.no_grad():  # one level: no interval to widen, the translation keeps its one output
        got = median.to_torch()(torch.as_tensor(xt[:4])).numpy()
    np.testing.assert_allclose(got, median.predict(xt[:4]), atol=1e-9)
    assert got.shape == (4, H, N, 1)


def test_conformal_margin_brings_the_interval_to_its_nominal_coverage():
    rng = np.random.default_rng(7)
    (x, y), (xt, yt) = demand_data(300, seed=1), demand_data(300, seed=2)
    y, yt = y + rng.normal(0, 0.5, y.shape), yt + rng.normal(0, 0.5, yt.shape)
    params = common_params(quantiles=(0.1, 0.5, 0.9)) | FRAMES | dict(base_frames=[3, 8, 11], n_threads=1)

    def coverage(conformal: bool) -> tuple[float, np.ndarray]:
        model = build_model("gbrt_demand", max_iter=60, conformal=conformal, **params).fit(x, y)
        pred = model.predict(xt)
        return float(((pred[..., 0] <= yt) & (yt <= pred[..., 2])).mean()), model.margin

    (plain, none), (calibrated, margin) = coverage(False), coverage(True)
    assert (none == 0).all() and margin.shape == (H,) and (margin > 0).all()  # quantile trees ran narrow here
    assert plain < 0.74 and 0.75 < calibrated < 0.86, (plain, calibrated)  # nominal: 0.8
    with pytest.raises(ConfigError, match="conformal needs an interval"):
        build_model("gbrt_demand", conformal=True, **(params | {"quantiles": None}))
    with pytest.raises(ConfigError, match="conformal_frac"):
        build_model("gbrt_demand", conformal=True, conformal_frac=1.0, **params)


def test_poisson_loss_learns_a_factor_of_the_baseline_for_counts():
    rng = np.random.default_rng(3)

    def counts(samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        x, _ = demand_data(samples, seed)
        x[..., 0] = np.abs(x[..., 0]) * 5 + 1  # positive levels
        rate = x[..., 0][:, [3, 8, 11]].mean(1) * np.linspace(0.5, 2.0, N)  # each cell a multiple of its HM
        return x, np.repeat(rng.poisson(rate)[:, None], H, axis=1).astype(float)

    (x, y), (xt, yt) = counts(300, 1), counts(100, 2)
    params = common_params() | FRAMES | dict(base_frames=[3, 8, 11], n_threads=1, max_iter=60)
    model = build_model("gbrt_demand", loss="poisson", **params).fit(x, y)
    pred = model.predict(xt)
    assert pred.shape == (100, H, N) and (pred > 0).all()  # a factor of the floored baseline: never negative
    hm = xt[..., 0][:, [3, 8, 11]].mean(1)[:, None]
    assert np.sqrt(((pred - yt) ** 2).mean()) < 0.8 * np.sqrt(((hm - yt) ** 2).mean())
    with torch.no_grad():
        got = model.to_torch()(torch.as_tensor(xt[:4])).numpy()
    np.testing.assert_allclose(got, pred[:4], rtol=1e-9, atol=1e-9)
    with pytest.raises(ConfigError, match="targets ≥ 0"):
        build_model("gbrt_demand", loss="poisson", **params).fit(x, y - 10)
    with pytest.raises(ConfigError, match="is for point forecasts"):
        build_model("gbrt_demand", loss="poisson", **(params | {"quantiles": (0.1, 0.9)}))
    with pytest.raises(ConfigError, match="'squared_error' or 'poisson'"):
        build_model("gbrt_demand", loss="gamma", **params)


def test_gbrt_demand_errors_say_what_to_do():
    model = build_model("gbrt_demand", n_threads=1, max_iter=5, **common_params())
    x, y = demand_data(40, seed=4)
    with pytest.raises(ConfigError, match="call fit"):
        model.predict(x)
    with pytest.raises(ConfigError, match=r"shape \[S, H, N\]"):
        model.fit(x, y[:, :1])
    with pytest.raises(ConfigError, match="base_frames"):
        build_model("gbrt_demand", **common_params(), base_frames=[99])
    with pytest.raises(ConfigError, match="not been fitted"):
        model.to_torch()


def hourly(samples: int, days_shock: float | np.ndarray = 1.0, seed: int = 0, noise: float = 0.0) -> np.ndarray:
    """Hourly windows, F = value + tod: each node's daily profile × a level (per window or one), + noise."""
    rng = np.random.default_rng(seed)
    days_shock = np.broadcast_to(days_shock, (samples,))[:, None, None]
    start = rng.integers(0, 24, samples)  # hour of the first frame
    hour = (start[:, None] + np.arange(12)[None]) % 24  # [S, T]
    usual = (1 + np.sin(2 * np.pi * hour / 24))[:, :, None] * np.linspace(1, 2, N)  # [S, T, N]
    tod = np.broadcast_to((hour / 24)[:, :, None], usual.shape)
    return np.stack([usual * days_shock + noise * rng.standard_normal(usual.shape), tod], -1)  # [S, T, N, 2]


def test_slot_profile_recovers_each_nodes_hourly_mean():
    x = hourly(200)
    prof = SlotProfile(24, tod_channel=1).fit(x, tuple(range(12)), 0)
    hours = np.arange(24)
    assert np.allclose(prof(hours), (1 + np.sin(2 * np.pi * hours / 24))[:, None] * np.linspace(1, 2, N))
    assert (SlotProfile(24, 1).slots(x, shift=1)[:, -1] == (SlotProfile(24, 1).slots(x)[:, -1] + 1) % 24).all()
    with pytest.raises(ConfigError, match="not fitted"):
        SlotProfile(24, 1)(hours)


def test_slot_profile_rank_shares_the_nodes_daily_shape():
    # every node is the same daily shape × its own level: rank 1 on the square-root scale
    truth = (1 + np.sin(2 * np.pi * np.arange(24) / 24))[:, None] * np.linspace(1, 2, N)
    x = hourly(40, seed=3, noise=0.3)
    raw = SlotProfile(24, 1).fit(x, tuple(range(12)), 0)
    low = SlotProfile(24, 1, rank=1).fit(x, tuple(range(12)), 0)
    assert np.linalg.matrix_rank(np.sqrt(low.table), tol=1e-9) == 1 and (low.table >= 0).all()
    assert np.abs(low.table - truth).mean() < 0.7 * np.abs(raw.table - truth).mean()  # the noise averages out
    assert low.empty().rank == 1 and low.empty().table is None  # fold profiles keep the setting
    whole = "rank 9 keeps every component of the 24-slot × 9-node profile; set it below 9"
    with pytest.raises(ConfigError, match=whole):
        SlotProfile(24, 1, rank=9).fit(x, tuple(range(12)), 0)
    params = common_params(in_features=2, input_len=12, adjacency=None) | dict(n_threads=1, max_iter=5, tod_channel=1)
    folded = build_model("gbrt_demand", profile_rank=1, profile_folds=2, **params)
    assert np.allclose(folded.fit(x, usual_next(x)).features.profile.table, low.table)
    for bad in (0, 1.5, True):
        with pytest.raises(ConfigError, match="profile_rank"):
            build_model("gbrt_demand", profile_rank=bad, **params)


def weekly(samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hourly windows with F = value + tod + day of week (0..6) whose level depends on the weekday (Fridays 1.5x,
    Sundays 0.5x), and each node's next-hour value ``[S, H, N]``."""
    start = np.random.default_rng(seed).integers(0, 24 * 7 * 4, samples)
    steps = start[:, None] + np.arange(13)[None]  # 12 input frames, then the target hour
    hour, day = steps % 24, (steps // 24) % 7
    usual = ((1 + np.sin(2 * np.pi * hour / 24)) * np.select([day == 4, day == 6], [1.5, 0.5], 1.0))[..., None]
    value = usual * np.linspace(1, 2, N)  # [S, 13, N]
    cal = np.broadcast_to(np.stack([hour / 24, day], -1)[:, :, None], (*value.shape, 2))
    x = np.concatenate([value[..., None], cal], -1)[:, :12]
    return x, np.repeat(value[:, 12:13], H, axis=1)


def test_a_day_of_week_profile_rolls_over_midnight():
    x, y = weekly(400, seed=5)
    prof = SlotProfile(24, tod_channel=1, day_channel=2).fit(x, tuple(range(12)), 0)
    assert prof.table.shape == (7 * 24, N) and prof.empty().day_channel == 2
    ahead = prof(prof.slots(x[:, -1:], shift=1)[:, 0])  # the usual level at each window's target hour
    np.testing.assert_allclose(ahead, y[:, 0])  # Friday 23:00 + 1 h is a Saturday hour, Sunday 23:00 a Monday one
    crossing = np.round(x[:, -1, 0, 1] * 24) == 23
    assert crossing.any() and np.allclose(ahead[crossing], y[crossing, 0])
    params = common_params(in_features=3, input_len=12, adjacency=None) | dict(n_threads=1, max_iter=30)
    model = build_model("gbrt_demand", tod_channel=1, day_channel=2, **params).fit(x, y)
    xt, yt = weekly(50, seed=6)
    pred = model.predict(xt)
    assert np.abs(pred - yt).mean() < 0.05 * np.abs(yt).mean()
    with torch.no_grad():
        np.testing.assert_allclose(model.to_torch()(torch.as_tensor(xt)).numpy(), pred, rtol=1e-9, atol=1e-9)
    with pytest.raises(ConfigError, match="weekend_channel or day_channel, not both"):
        build_model("gbrt_demand", tod_channel=1, weekend_channel=2, day_channel=2, **params)
    with pytest.raises(ConfigError, match="needs tod_channel"):
        build_model("gbrt_demand", day_channel=2, **params)
    bad = x.copy()
    bad[..., 2] /= 7  # a day in [0, 1) instead of its index
    with pytest.raises(ConfigError, match=r"day_channel 2 holds .* not a day of week 0\.\.6: .* dow_index"):
        build_model("gbrt_demand", tod_channel=1, day_channel=2, **params).fit(bad, y)


def test_level_features_carry_a_shock_to_the_target_hour():
    feats = CellFeatures.build(12, N, 2, 0, closeness_frames=range(12), profile=SlotProfile(24, 1)).fit(hourly(200))
    x = hourly(5, days_shock=0.7, seed=1)  # every value 30 % below its usual level
    out = feats(x).reshape(5, N, -1)
    assert out.shape[-1] == feats.width == 12 + 1 + 1 + 6 + 1 + 1
    hour = np.round(x[:, -1, 0, 1] * 24) + 1
    ahead = (1 + np.sin(2 * np.pi * hour / 24))[:, None] * np.linspace(1, 2, N)  # usual level at the target
    assert np.allclose(out[..., 14], ahead)
    assert np.allclose(out[..., 15], -0.3 * x[:, -1, :, 0] / 0.7)  # last gap to the usual level
    assert np.allclose(out[..., 18], 0.7 * ahead, rtol=0.05)  # the profile scaled by the recent level
    hm = x[..., 0].mean(1)
    assert np.allclose(feats.baseline(x), 0.5 * out[..., 19] + 0.5 * hm)  # half HM, half the recent-level forecast
    only_hm = CellFeatures.build(12, N, 2, 0, profile=feats.profile, profile_weight=0.0)
    assert np.allclose(only_hm.baseline(x), hm)


def usual_next(x: np.ndarray) -> np.ndarray:
    """Each node's usual value at the hour after the window: ``[S, H, N]``."""
    hour = np.round(x[:, -1, 0, 1] * 24) + 1
    usual = (1 + np.sin(2 * np.pi * hour / 24))[:, None] * np.linspace(1, 2, N)  # [S, N]
    return np.repeat(usual[:, None], H, axis=1)


def test_gbrt_demand_with_a_profile_learns_the_level_and_the_next_hour():
    level, level_t = np.random.default_rng(2).uniform(0.5, 1.5, (2, 200))  # each window's demand level
    x, xt = hourly(200, level, seed=2, noise=0.3), hourly(100, level_t[:100], seed=3, noise=0.3)
    y, yt = level[:, None, None] * usual_next(x), level_t[:100, None, None] * usual_next(xt)
    params = common_params(in_features=2, input_len=12, adjacency=None) | dict(n_threads=1, max_iter=40)
    model = build_model("gbrt_demand", tod_channel=1, seeds=2, **params).fit(x, y)
    pred = model.predict(xt)
    assert pred.shape == (100, H, N) and len(model.estimators[0][0]) == 2  # [step][level][seed]
    hm = xt[..., 0].mean(1)[:, None]  # the baseline it corrects: every frame's mean
    assert np.abs(pred - yt).mean() < 0.3 * np.abs(hm - yt).mean()
    with pytest.raises(ConfigError, match="tod_channel"):
        build_model("gbrt_demand", tod_channel=0, **params)
    with pytest.raises(ConfigError, match="seeds"):
        build_model("gbrt_demand", seeds=0, **params)
    with pytest.raises(ConfigError, match="profile_weight"):
        build_model("gbrt_demand", profile_weight=1.5, **params)
    with pytest.raises(ConfigError, match="recent"):
        build_model("gbrt_demand", recent=13, **params)


def test_gbrt_demand_max_features_draws_columns_per_split_and_checks_its_share():
    x, y = demand_data(200, 1)
    params = common_params() | FRAMES | dict(n_threads=1, max_iter=20)
    full = build_model("gbrt_demand", **params).fit(x, y)
    some = build_model("gbrt_demand", max_features=0.3, **params).fit(x, y)
    assert some.estimators[0][0][0].max_features == 0.3
    assert not np.allclose(full.predict(x[:20]), some.predict(x[:20]))  # other columns chosen: other trees
    with torch.no_grad():  # the ONNX-ready torch module walks the same trees
        np.testing.assert_allclose(some.to_torch()(torch.as_tensor(x[:4])).numpy(), some.predict(x[:4]), atol=1e-9)
    for bad in (0, 1.5, True, "half"):
        with pytest.raises(ConfigError, match=r"max_features=.* must be a share in \(0, 1\]"):
            build_model("gbrt_demand", max_features=bad, **params)


def test_uctb_calendar_channels_follow_the_unscaled_target(shared_data):
    """The DiDi task gbrt_demand reads: ``calendar`` appends tod and weekend after the count, outside the scaler."""
    from cityagent.hub.importers.datasets import import_known
    from cityagent.hub.protocols import build_task

    hub = import_known("didi-xian", data_dir=shared_data)
    plain, task = build_task(hub, "uctb"), build_task(hub, "uctb", calendar=["tod", "weekend"])
    assert plain.feature_names == ["count"] and task.feature_names == ["count", "tod", "weekend"]
    x, _, _ = task.test.arrays()
    np.testing.assert_array_equal(x[..., 0], plain.test.arrays()[0][..., 0])  # the same windows
    np.testing.assert_array_equal(task.x_scaler.scale[1:], 1.0)
    assert task.x_scaler.scale[0] == plain.x_scaler.scale[0]
    ts = task.test.times[task.test.anchors]  # the last input step of each test window
    np.testing.assert_allclose(x[:, -1, 0, 1], ts.hour / 24)
    np.testing.assert_array_equal(x[:, -1, 0, 2], ts.day_of_week >= 5)


def test_city_level_scales_the_profile_by_the_whole_citys_recent_level():
    prof = SlotProfile(24, 1)
    feats = CellFeatures.build(12, N, 2, 0, closeness_frames=range(12), profile=prof, city=True).fit(hourly(200))
    shock = np.where(np.arange(N) < N // 2, 0.5, 1.0)[None, None, :]  # half the cells run at half their level
    x = hourly(5, seed=1)
    x[..., 0] *= shock
    out = feats(x).reshape(5, N, -1)
    assert out.shape[-1] == feats.width == 12 + 1 + 1 + 6 + 2 + 1 + 1
    ahead, recent = out[..., 14], list(range(9, 12))
    slots = prof.slots(x)[:, recent]
    ratio = x[..., 0][:, recent].sum((1, 2)) / prof(slots).sum((1, 2))  # [S]: the city's recent level vs usual
    assert 0.5 < ratio.min() and ratio.max() < 1.0
    assert np.allclose(out[..., 21], ahead * ratio[:, None])  # the same ratio for every cell
    assert np.allclose(feats.baseline(x), 0.5 * out[..., 21] + 0.5 * x[..., 0].mean(1))
    with pytest.raises(ConfigError, match="city_level needs the profile"):
        build_model("gbrt_demand", city_level=True, **common_params(in_features=2, input_len=12, adjacency=None))


def test_halflife_weighs_recent_windows_more():
    x, y = demand_data(200, seed=5)
    y = y + np.where(np.arange(200) < 160, 1.0, -1.0)[:, None, None]  # the last 40 windows moved down by 2
    xt, yt = demand_data(50, seed=6)
    params = common_params() | FRAMES | dict(n_threads=1, max_iter=40, base_frames=[3, 8, 11])
    drift = {
        hl: float(np.mean(build_model("gbrt_demand", halflife=hl, **params).fit(x, y).predict(xt) - yt))
        for hl in (None, 5.0)
    }
    # all alike: mostly the old level (+1 over the truth); halflife 5: towards the new one (-1), as far as the
    # trees' leaves hold recent windows at all (a leaf of old windows only keeps their mean, whatever the weights)
    assert drift[None] > 0.4 and drift[5.0] < -0.2
    with pytest.raises(ConfigError, match="halflife"):
        build_model("gbrt_demand", halflife=0, **params)


def test_profile_frames_all_fits_the_profile_on_every_frame():
    x = hourly(100, np.linspace(0.5, 1.5, 100), seed=7)
    close = CellFeatures.build(12, N, 2, 0, closeness_frames=range(9, 12), profile=SlotProfile(24, 1)).fit(x)
    every = CellFeatures.build(
        12, N, 2, 0, closeness_frames=range(9, 12), profile=SlotProfile(24, 1), profile_all=True
    ).fit(x)
    assert close.profile_frames == (9, 10, 11) and every.profile_frames == tuple(range(12))
    assert np.allclose(close.profile.table, SlotProfile(24, 1).fit(x, (9, 10, 11), 0).table)
    assert np.allclose(every.profile.table, SlotProfile(24, 1).fit(x, tuple(range(12)), 0).table)
    with pytest.raises(ConfigError, match="profile_frames"):
        build_model("gbrt_demand", profile_frames="period", **common_params())


def test_profile_folds_describe_each_block_by_the_other_blocks_profile():
    level = np.where(np.arange(200) < 100, 1.0, 3.0)  # the second block runs at 3x the first
    x = hourly(200, level, seed=8)
    y = level[:, None, None] * usual_next(x)
    params = common_params(in_features=2, input_len=12, adjacency=None) | dict(n_threads=1, max_iter=20, tod_channel=1)
    usual = usual_next(x)[:, 0]  # [S, N] each node's level-1 value at the target hour
    folded = build_model("gbrt_demand", profile_folds=2, **params)
    feats, base = folded.training_features(x)
    ahead = feats.reshape(200, N, -1)[..., 14]  # the usual level at the target hour, as the trees see it
    on_grid = functools.partial(np.allclose, atol=2.0**-21)  # features are snapped to multiples of 2^-20
    assert on_grid(ahead[:100], 3 * usual[:100]) and on_grid(ahead[100:], usual[100:])  # the other block's
    in_sample = build_model("gbrt_demand", **params).training_features(x)[0].reshape(200, N, -1)[..., 14]
    ratio = in_sample[usual > 0.1] / usual[usual > 0.1]  # (the profile is 0 at 18:00)
    assert np.all(ratio > 1.1) and np.all(ratio < 2.9)  # both blocks mixed in, the window's own among them
    # predictions use the profile of all windows, the same one an unfolded model fits
    assert np.allclose(folded.features.profile.table, SlotProfile(24, 1).fit(x, tuple(range(12)), 0).table)
    assert not np.allclose(base, folded.features.baseline(x))  # training baselines came from the folds' profiles
    assert folded.fit(x, y).predict(x).shape == (200, H, N)
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="profile_folds"):
            build_model("gbrt_demand", profile_folds=bad, **params)
