"""Protocol presets: the registry, the strict default on hand-made hubs, and the published protocols on the real
files — sample counts from each code's own formulas, windows equal to a naive re-implementation of its loop."""

import numpy as np
import pandas as pd
import pytest

from cityagent.errors import ConfigError, HubError
from cityagent.hub import Hub
from cityagent.hub.protocols import PROTOCOLS, build_task, protocol_params
from cityagent.hub.splits import part_bounds
from tests.factories import tiny_hub

# ---------------------------------------------------------------- registry and the strict default (hand-made hubs)


def test_registry_names_and_param_errors():
    assert {"strict", "tgcn", "uctb", "gsnet", "eastnet"} <= set(PROTOCOLS)
    with pytest.raises(ConfigError, match="unknown protocol 'stgcn'; protocols are: eastnet, gsnet, strict"):
        build_task(tiny_hub(), "stgcn")
    with pytest.raises(ConfigError, match="no parameter 'input_length'; did you mean 'input_len'"):
        build_task(tiny_hub(), "strict", input_length=6)
    assert protocol_params("strict")["input_len"] == 12 and protocol_params("gsnet")["train_rate"] == 0.6


@pytest.fixture(scope="module")
def long_hub() -> Hub:
    hub = tiny_hub(sensors=3, steps=400)
    return Hub({k: v for k, v in hub.tables.items() if k in ("traffic", "sensors", "edges")}, hub.meta)


def test_strict_counts_features_and_raw_units(long_hub):
    task = build_task(long_hub, "strict", columns=["speed", "flow"])
    bounds = part_bounds(400, (0.7, 0.1, 0.2))
    assert task.counts() == {k: (e - s) - 24 + 1 for k, (s, e) in zip(("train", "val", "test"), bounds, strict=True)}
    assert task.feature_names[:2] == ["speed", "flow"] and task.feature_names[2:] == [
        "tod",
        *[f"dow_{d}" for d in range(7)],
    ]
    assert (task.input_len, task.horizon, task.step, task.protocol) == (12, 12, "15min", "strict")
    x, y, mask = task.test.batch([0])
    first_input = task.test.anchors[0] - 11
    df = long_hub.table("traffic")
    speed_s0 = df[df["sensor_id"] == "s0"]["speed"].to_numpy(np.float32)
    np.testing.assert_array_equal(x[0, :, 0, 0], speed_s0[first_input : first_input + 12])  # raw km/h
    np.testing.assert_array_equal(y[0, :, 0], speed_s0[first_input + 12 : first_input + 24])
    assert mask.all() and task.eval_mask.all() and task.val.x is task.train.x
    np.testing.assert_array_equal(task.x_scaler.scale[2:], 1)  # calendar channels pass through
    assert task.adjacency.shape == (3, 3) and task.adjacency[0, 1] == 1  # the hub's road edges s0→s1


def test_strict_never_leaks_across_splits(long_hub):
    task = build_task(long_hub, "strict")
    assert task.train.target_times().max() < task.val.target_times().min()
    assert task.val.target_times().max() < task.test.target_times().min()
    train_end = task.extra["train_steps"]
    val_inputs = task.val.anchors[:, None] + np.asarray(task.spec.input_offsets)[None, :]
    assert val_inputs.min() >= train_end  # windows are built inside each part


def test_strict_scalers_see_training_steps_only(long_hub):
    task = build_task(long_hub, "strict")
    traffic = long_hub.table("traffic").copy()
    late = traffic["ts"] >= task.train.times[task.extra["train_steps"]]
    traffic.loc[late, "speed"] *= 100  # change everything after the training steps
    changed = build_task(Hub({**long_hub.tables, "traffic": traffic}, long_hub.meta), "strict")
    np.testing.assert_array_equal(changed.x_scaler.scale, task.x_scaler.scale)
    np.testing.assert_array_equal(changed.y_scaler.offset, task.y_scaler.offset)
    assert not np.array_equal(changed.test.arrays()[1], task.test.arrays()[1])
    leaky = build_task(Hub({**long_hub.tables, "traffic": traffic}, long_hub.meta), "tgcn")
    assert leaky.x_scaler.scale[0] < build_task(long_hub, "tgcn").x_scaler.scale[0]  # global max: leaks, says so
    assert any("leaks" in n for n in leaky.notes)


def test_strict_missing_inputs_need_imputation(long_hub):
    traffic = long_hub.table("traffic")
    gappy = traffic.drop(index=traffic.index[(traffic["sensor_id"] == "s2").to_numpy()][::5])
    hub = Hub({**long_hub.tables, "traffic": gappy}, long_hub.meta)
    with pytest.raises(HubError, match=r"missing input.*impute='ffill'.*task\.params\.impute=ffill"):
        build_task(hub, "strict")
    task = build_task(hub, "strict", impute="ffill")
    assert sum(task.counts().values()) > 0 and any("filled" in n for n in task.notes)
    # the inputs are filled, the truth is not: a missing reading stays a masked target in every split
    x, _, mask = task.test.batch(np.arange(len(task.test)))
    assert task.test.masked > 0 and not mask.all() and np.isfinite(x).all()


def test_mostly_missing_readings_point_at_the_step_not_at_imputation(long_hub):
    traffic = long_hub.table("traffic")
    sparse = traffic[traffic.groupby("sensor_id").cumcount() % 3 == 0]  # 2 of 3 steps missing everywhere
    hub = Hub({**long_hub.tables, "traffic": sparse}, long_hub.meta)
    with pytest.raises(
        HubError, match=r"6[67]% of the speed readings .* missing: check that hub.json's step \(15min\)"
    ):
        build_task(hub, "strict")


def test_errors_say_what_is_wrong():
    with pytest.raises(HubError, match="has 20 steps of traffic, but one window needs 24"):
        build_task(tiny_hub(steps=20), "strict", table="traffic")
    with pytest.raises(ConfigError, match="pass table="):
        build_task(tiny_hub(steps=40), "strict")  # traffic and demand: which one?
    with pytest.raises(ConfigError, match="ratios"):
        build_task(tiny_hub(steps=40), "strict", table="traffic", ratios=(1.0,))


# ---------------------------------------------------------------- the published protocols on the real files


def _hub(shared_data, name):
    from cityagent.hub.importers.datasets import import_known

    return import_known(name, data_dir=shared_data)


@pytest.fixture(scope="module")
def sz(shared_data):
    return _hub(shared_data, "sz-taxi")


@pytest.fixture(scope="module")
def didi(shared_data):
    return _hub(shared_data, "didi-xian")


@pytest.fixture(scope="module")
def chicago(shared_data):
    hub = _hub(shared_data, "chicago-risk")
    with np.load(shared_data / "risk/gsnet_chicago/chicago_20x20_derived.npz") as z:
        return hub, z["all_data"], z["risk_mask"]


def test_tgcn_sz_taxi(sz, shared_data):
    task = build_task(sz, "tgcn")  # SZ-taxi: seq_len 4, pre_len 1 (T-GCN README)
    # range(len(part) - seq_len - pre_len) per part, part = int(2976 * 0.8): 2380 - 5 and 596 - 5 windows
    assert task.counts() == {"train": 2380 - 4 - 1, "val": 0, "test": 596 - 4 - 1}  # 591 = rows of the saved result
    speed = pd.read_csv(shared_data / "traffic/sz_taxi/sz_speed_first40roads.csv").iloc[:, 1:].to_numpy(np.float32)
    assert task.x_scaler.scale[0] == pytest.approx(1 / speed.max()) and task.y_scaler.offset[0] == 0
    train, test = speed[:2380], speed[2380:]
    x, y, mask = task.train.arrays()
    naive_x = np.stack([train[i : i + 4] for i in range(len(train) - 4 - 1)])
    naive_y = np.stack([train[i + 4 : i + 5] for i in range(len(train) - 4 - 1)])
    np.testing.assert_array_equal(x[..., 0], naive_x)  # zeros are back as 0 km/h
    np.testing.assert_array_equal(y, naive_y)
    xt, yt, _ = task.test.batch([0, 590])
    np.testing.assert_array_equal(xt[1, :, :, 0], test[590:594])
    np.testing.assert_array_equal(yt[1], test[594:595])
    adj = pd.read_csv(shared_data / "traffic/sz_taxi/sz_adj.csv", header=None).to_numpy()[:40, :40]
    np.testing.assert_array_equal(task.adjacency, adj)  # directed, as published
    assert mask.all() and any("zero readings" in n for n in task.notes)
    horizon4 = build_task(sz, "tgcn", horizon=4)  # 60 min
    assert horizon4.counts()["test"] == 596 - 4 - 4 and horizon4.horizon == 4


def test_uctb_didi_xian_counts_windows_and_removal(didi):
    task = build_task(didi, "uctb")
    t, daily = 1440, 24
    train_end = int(0.9 * t)  # SplitData: 1296
    n_train = train_end - max(6, 7 * daily, 4 * 7 * daily)  # ST_MoveSample: 624 samples
    assert task.counts() == {"train": int(0.9 * n_train), "val": n_train - int(0.9 * n_train), "test": t - train_end}
    assert task.counts() == {"train": 561, "val": 63, "test": 144}
    from cityagent.hub.tensor import to_tensor

    full = to_tensor(didi, "demand", ["count"]).values[:, :, 0]  # [1440, 256]
    keep = full[:train_end].mean(axis=0) * daily > 1
    assert int((~keep).sum()) == 3 and len(task.nodes) == 253
    data = full[:, keep]
    assert task.x_scaler.scale[0] == pytest.approx(1 / (data[:train_end].max() - data[:train_end].min()))
    x, y, _ = task.test.arrays()
    for j in (0, 77, 143):  # test target tau = train_end + j; history reaches back into the training slots
        tau = train_end + j
        trend = [data[tau - 7 * daily * k] for k in (4, 3, 2, 1)]
        period = [data[tau - daily * k] for k in range(7, 0, -1)]
        closeness = [data[tau - k] for k in range(6, 0, -1)]
        np.testing.assert_array_equal(x[j, :, :, 0], np.stack(trend + period + closeness))
        np.testing.assert_array_equal(y[j, 0], data[tau])
    assert task.extra["groups"] == {"trend": 4, "period": 7, "closeness": 6}
    assert task.train.target_times().max() < task.val.target_times().min() < task.test.target_times().min()


def test_uctb_metro_operating_hours(shared_data):
    task = build_task(_hub(shared_data, "metro-chongqing"), "uctb")
    t, daily = 6570, 18  # 365 days × 18 operating-hour slots
    train_end = int(0.9 * t)
    n_train = train_end - 4 * 7 * daily
    assert task.counts() == {"train": int(0.9 * n_train), "val": n_train - int(0.9 * n_train), "test": t - train_end}
    assert task.counts() == {"train": 4868, "val": 541, "test": 657}
    times = task.test.times
    a = task.test.anchors[5]
    inputs = times[a + np.asarray(task.spec.input_offsets)]
    target = times[a + 1]
    period = inputs[4:11]  # the same slot on each of the 7 previous days, across the closed night hours
    assert (period.time == target.time()).all()
    assert list((target - period).days) == [7, 6, 5, 4, 3, 2, 1]


def test_gsnet_chicago_reproduces_the_published_split(chicago):
    hub, all_data, risk_mask = chicago
    task = build_task(hub, "gsnet")
    assert task.counts() == {"train": 3499 - 672, "val": 4665 - 3499 - 672, "test": 5832 - 4665 - 672}
    assert task.counts()["test"] == 495 and int(task.extra["rush_hour"]["test"].sum()) == 144
    x = task.test.x  # [T, 400, 41]
    t = all_data.shape[0]
    assert np.array_equal(x, all_data.transpose(0, 2, 3, 1).reshape(t, 400, 41))  # the npz's all_data, exactly
    assert task.eval_mask.sum() == 50 and np.array_equal(task.eval_mask, risk_mask.reshape(-1) == 1)
    test_part = all_data[4665:]
    xb, yb, _ = task.test.batch([0, 200, 494])
    for b, i in enumerate((0, 200, 494)):  # split_and_norm_data: t = i + 672, weeks i + 168 w, then t-3..t-1
        tt = i + 672
        frames = [i + w * 168 for w in range(4)] + [tt - 3, tt - 2, tt - 1]
        np.testing.assert_array_equal(xb[b], test_part[frames].transpose(0, 2, 3, 1).reshape(7, 400, 41))
        np.testing.assert_array_equal(yb[b, 0], test_part[tt, 0].reshape(400))
    train = all_data[:3499]
    for c in (0, 33, 39, 40):  # Scaler_Chi: min-max of these channels on the training hours
        lo, hi = train[:, c].min(), train[:, c].max()
        assert task.x_scaler.scale[c] == pytest.approx(1 / (hi - lo)) and task.x_scaler.offset[c] == pytest.approx(
            -lo / (hi - lo)
        )
    others = np.setdiff1d(np.arange(41), [0, 33, 39, 40])
    assert (task.x_scaler.scale[others] == 1).all() and (task.x_scaler.offset[others] == 0).all()
    assert task.feature_names[33] == "temperature_k" and task.extra["grid"] == [20, 20]


def test_eastnet_jonas_nyc(shared_data):
    hub = _hub(shared_data, "jonas-nyc")
    task = build_task(hub, "eastnet")
    n = 4800 - 8 - 8  # range(obs_len, T - pred_len)
    assert task.counts() == {"train": n - int(0.1 * n) - int(0.2 * n), "val": int(0.1 * n), "test": int(0.2 * n)}
    assert task.counts() == {"train": 3350, "val": 478, "test": 956}
    with np.load(shared_data / "demand/jonas_eastnet/JONAS-NYC-16x8-20151024-20160131.npz") as z:
        taxi, mask = z["taxi"].reshape(4800, 128, 2).astype(np.float32), z["mask"]
    assert task.eval_mask.sum() == 128 - len(mask)
    assert not task.eval_mask[mask[0, 0] * 8 + mask[0, 1]]
    lo, hi = taxi[..., 0].min(), taxi[..., 0].max()  # min-max per channel on the whole series
    assert task.x_scaler.scale[0] == pytest.approx(1 / (hi - lo))
    xb, yb, _ = task.test.batch([0, 955])
    for b, j in enumerate((0, 955)):
        i = 8 + 3350 + 478 + j  # get_feats index of test sample j
        np.testing.assert_array_equal(xb[b, :, :, :2], taxi[i - 8 : i])
        np.testing.assert_array_equal(yb[b], taxi[i : i + 8, :, 0])
    assert task.feature_names[:2] == ["count", "supply"] and any("WHOLE series" in n for n in task.notes)
