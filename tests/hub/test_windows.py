"""Window specs, lazy batch gathering (== a naive loop), missing-data policy, and chronological splits."""

import numpy as np
import pandas as pd
import pytest

from cityagent.errors import ConfigError, HubError
from cityagent.hub.splits import part_bounds, split_over_samples, split_over_time
from cityagent.hub.windows import WindowSpec, make_split


def _series(t=60, n=3, f=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(t, n, f)).astype(np.float32)
    y = x[:, :, 0].copy()
    ts = pd.date_range("2026-01-05", periods=t, freq="1h", tz="UTC")
    return x, y, ts


def test_sliding_and_periodic_offsets():
    s = WindowSpec.sliding(3, 2)
    assert s.input_offsets == (-2, -1, 0) and s.target_offsets == (1, 2) and s.need() == 5
    u = WindowSpec.periodic(closeness=6, period=24, trend=168, period_len=7, trend_len=4, horizon=1)
    # the target is t+1: trend = same hour 4..1 weeks before it, period = 7..1 days before, then t-5..t
    assert u.input_offsets[:4] == (1 - 672, 1 - 504, 1 - 336, 1 - 168)
    assert u.input_offsets[4:11] == tuple(1 - 24 * k for k in range(7, 0, -1))
    assert u.input_offsets[11:] == (-5, -4, -3, -2, -1, 0)
    assert u.groups == (("trend", 4), ("period", 7), ("closeness", 6)) and u.history == 671
    g = WindowSpec.periodic(closeness=3, period=24, trend=168, period_len=0, trend_len=4)
    assert g.input_offsets == (-671, -503, -335, -167, -2, -1, 0)
    with pytest.raises(ConfigError, match="after the inputs"):
        WindowSpec((-1, 0, 1), (1,))
    with pytest.raises(ConfigError):
        WindowSpec.sliding(0, 3)


def test_anchors_keep_windows_inside_the_range():
    spec = WindowSpec.sliding(4, 2)
    a = spec.anchors(10, 30)
    assert a[0] - 3 == 10 and a[-1] + 2 == 29 and len(a) == 20 - 6 + 1


@pytest.mark.parametrize("spec", [WindowSpec.sliding(5, 3), WindowSpec((-20, -10, -1, 0), (1, 4))])
def test_batch_equals_naive_loop(spec):
    x, y, ts = _series()
    split = make_split(x, y, spec.anchors(0, len(ts)), spec, ts)
    idx = np.array([0, 3, len(split) - 1, 2])
    xb, yb, mb = split.batch(idx)
    for b, i in enumerate(idx):
        t = split.anchors[i]
        np.testing.assert_array_equal(xb[b], np.stack([x[t + o] for o in spec.input_offsets]))
        np.testing.assert_array_equal(yb[b], np.stack([y[t + o] for o in spec.target_offsets]))
    assert xb.shape == (4, spec.input_len, 3, 2) and yb.shape == (4, spec.horizon, 3) and mb.all()
    assert split.x is x and split.y is y  # the split references the arrays, it does not copy them
    xa, _, _ = split.arrays()
    assert len(xa) == len(split)
    assert (split.ts == ts[split.anchors + spec.target_offsets[0]]).all()
    assert split.target_times().shape == (len(split), spec.horizon)
    assert split.batch(1)[0].shape == (1, spec.input_len, 3, 2)


def test_missing_inputs_skipped_and_missing_targets_masked():
    x, y, ts = _series(t=20, n=2, f=1)
    x[5, 1, 0] = np.nan  # one missing input value
    y[12, 0] = np.nan  # one missing target
    spec = WindowSpec.sliding(3, 1)
    anchors = spec.anchors(0, 20)
    split = make_split(x, y, anchors, spec, ts)
    assert split.skipped == {"missing_inputs": 3} and split.masked == 1  # anchors 5, 6, 7 see step 5
    assert len(split) == len(anchors) - 3 and not np.isin([5, 6, 7], split.anchors).any()
    _, yb, mb = split.arrays()
    assert (~mb).sum() == 1 and yb[~mb][0] == 0
    strict_targets = make_split(x, y, anchors, spec, ts, skip_missing_targets=True)
    assert strict_targets.skipped["missing_targets"] == 1 and len(strict_targets) == len(split) - 1
    keep_all = make_split(x, y, anchors, spec, ts, skip_missing_inputs=False)
    assert len(keep_all) == len(anchors)


def test_part_bounds_follow_int_of_cumulative_share():
    assert part_bounds(5832, (0.6, 0.2, 0.2)) == [(0, 3499), (3499, 4665), (4665, 5832)]  # GSNet Chicago
    assert part_bounds(2976, (0.8, 0.2)) == [(0, 2380), (2380, 2976)]  # T-GCN SZ
    with pytest.raises(ConfigError, match="add up to 1"):
        part_bounds(10, (0.7, 0.2))


def test_split_over_time_never_leaks():
    x, y, ts = _series(t=200, n=2, f=1)
    spec = WindowSpec.sliding(6, 3)
    parts = split_over_time(200, spec, (0.7, 0.1, 0.2))
    bounds = part_bounds(200, (0.7, 0.1, 0.2))
    splits = [make_split(x, y, a, spec, ts) for a in parts]
    for s, (lo, hi) in zip(splits, bounds, strict=True):
        steps = s.anchors[:, None] + np.r_[spec.input_offsets, spec.target_offsets][None, :]
        assert steps.min() >= lo and steps.max() < hi  # inputs and targets stay inside the part
        assert len(s) == (hi - lo) - spec.need() + 1
    train, val, test = splits
    assert train.target_times().max() < val.target_times().min()
    assert val.target_times().max() < test.target_times().min()


def test_split_over_samples_rounding_conventions():
    a = np.arange(4784)
    tr, va, te = split_over_samples(a, (0.7, 0.1, 0.2), rounding="tail_floor")  # EAST-Net split2len
    assert (len(tr), len(va), len(te)) == (3350, 478, 956)
    tr, va = split_over_samples(np.arange(624), (0.9, 0.1))  # UCTB SplitData on DiDi Xi'an
    assert (len(tr), len(va)) == (561, 63) and tr[-1] + 1 == va[0]
    with pytest.raises(ConfigError):
        split_over_samples(a, (0.5, 0.5), rounding="round")


def test_too_short_for_the_window_says_how_many_steps():
    with pytest.raises(
        HubError, match=r"has 30 steps, so the validation split \(10%\) gets 2, but one window needs 6"
    ):  # 0.7 + 0.1 < 0.8
        split_over_time(30, WindowSpec.sliding(4, 2), (0.7, 0.1, 0.2))
    with pytest.raises(HubError, match=r"has 8 steps, so the training split \(70%\) gets 5, but one window needs 6"):
        split_over_time(8, WindowSpec.sliding(4, 2), (0.7, 0.1, 0.2))  # said as a person says it, not "part 0"
    with pytest.raises(HubError, match=r"so the test split \(20%\) gets 3"):
        split_over_time(12, WindowSpec.sliding(4, 2), (0.8, 0.2))  # T-GCN's train/test
    x, y, ts = _series(t=10)
    with pytest.raises(HubError, match="reach outside"):
        make_split(x, y, np.array([9]), WindowSpec.sliding(2, 1), ts)
