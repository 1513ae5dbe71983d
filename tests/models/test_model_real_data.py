"""On real SZ-taxi speeds (first 40 roads, 15 min), a briefly trained STID beats the HA and last-value baselines."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cityagent.models import build_model

DATA = (Path(__file__).parents[2] / ".." / "shared" / "data" / "traffic" / "sz_taxi").resolve()
T_IN, H = 12, 4


def windows(feat: np.ndarray, speed: np.ndarray, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
    starts = np.arange(lo, hi - T_IN - H + 1)
    x = np.stack([feat[i : i + T_IN] for i in starts])  # [S, T_in, N, F]
    y = np.stack([speed[i + T_IN : i + T_IN + H] for i in starts])  # [S, H, N]
    return torch.from_numpy(x), torch.from_numpy(y).float()


def masked_mae(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, mu: float, sd: float) -> float:
    with torch.no_grad():
        pred = model.eval()(x) * sd + mu
    observed = y > 0  # zeros are missing readings in this file
    return float((pred - y).abs()[observed].mean())


@pytest.mark.slow
def test_stid_beats_baselines_on_sz_taxi():
    if not (DATA / "sz_speed_first40roads.csv").exists():
        pytest.skip(f"SZ-taxi data not found under {DATA}")
    torch.manual_seed(0)
    df = pd.read_csv(DATA / "sz_speed_first40roads.csv")
    ts = pd.to_datetime(df.pop("date"), format="%m/%d/%Y %H:%M")
    speed = df.to_numpy(np.float64)  # [T, N]
    t, n = speed.shape
    n_train = int(t * 0.8)
    mu, sd = speed[:n_train].mean(), speed[:n_train].std()
    tod = ((ts.dt.hour * 60 + ts.dt.minute) / 1440).to_numpy()
    dow = np.eye(7)[ts.dt.dayofweek.to_numpy()]
    feat = np.concatenate(
        [
            ((speed - mu) / sd)[..., None],
            np.broadcast_to(tod[:, None, None], (t, n, 1)),
            np.broadcast_to(dow[:, None, :], (t, n, 7)),
        ],
        axis=-1,
    ).astype(np.float32)  # [T, N, 1 + tod + 7 dow]
    x_train, y_train = windows(feat, speed, 0, n_train)
    x_test, y_test = windows(feat, speed, n_train, t)
    common = dict(num_nodes=n, in_features=9, input_len=T_IN, horizon=H)
    model = build_model("stid", **common, steps_per_day=96)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    target, observed = (y_train - mu) / sd, y_train > 0
    for _ in range(6):
        model.train()
        for batch in torch.randperm(len(x_train)).split(64):
            opt.zero_grad()
            err = (model(x_train[batch]) - target[batch]).abs() * observed[batch]
            (err.sum() / observed[batch].sum()).backward()
            opt.step()
    stid = masked_mae(model, x_test, y_test, mu, sd)
    ha = masked_mae(build_model("ha", **common), x_test, y_test, mu, sd)
    last = masked_mae(build_model("last_value", **common), x_test, y_test, mu, sd)
    assert stid < 0.97 * ha and stid < last, dict(stid=stid, ha=ha, last_value=last)
