"""Hand-made model bundles for export and registry tests: random weights, non-trivial scalers, real-unit windows.

Independent of the training engine on purpose, so export is tested on every registered model.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from cityagent.models.registry import build_model
from cityagent.models.scaled import ScaledModel
from cityagent.training.bundle import BUNDLE_FILE, ModelBundle

N, T_IN, H = 4, 6, 3
FEATURES = ["speed", "tod", *[f"dow_{d}" for d in range(7)]]  # a value channel + unscaled calendar channels
X_SCALE = np.array([0.05] + [1.0] * 8)  # scaled = x * scale + offset: km/h → roughly N(0, 1)
X_OFFSET = np.array([-2.5] + [0.0] * 8)
Y_SCALE, Y_OFFSET = 0.05, -2.5


def build_params(quantiles: tuple[float, ...] | None = None) -> dict:
    ring = np.roll(np.eye(N), 1, axis=1) + np.roll(np.eye(N), -1, axis=1)
    return dict(
        num_nodes=N,
        in_features=len(FEATURES),
        input_len=T_IN,
        horizon=H,
        target_channel=0,
        adjacency=ring,
        grid=(2, 2),
        quantiles=quantiles,
    )


def tiny_bundle(
    model_name: str, *, quantiles: tuple[float, ...] | None = None, task: str = "traffic-tiny", seed: int = 0
) -> ModelBundle:
    """A bundle of ``model_name`` with random (perturbed) weights and the full task meta."""
    torch.manual_seed(seed)
    params = build_params(quantiles)
    model = ScaledModel(build_model(model_name, **params), X_SCALE, X_OFFSET, Y_SCALE, Y_OFFSET)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))  # zero-initialised heads would make parity trivial
    meta = dict(
        task=task,
        domain="traffic",
        dataset="synthetic",
        protocol="strict",
        nodes=[f"s{i}" for i in range(N)],
        step="5min",
        input_len=T_IN,
        horizon=H,
        input_offsets=list(range(-T_IN + 1, 1)),
        target_offsets=list(range(1, H + 1)),
        feature_names=FEATURES,
        units="km/h",
        quantiles=list(quantiles) if quantiles else None,
        eval_mask=None,
        run_id=None,
    )
    return ModelBundle(
        model_name=model_name,
        build_params=params,
        state_dict=model.state_dict(),
        x_scaler={"kind": "standard", "scale": X_SCALE.tolist(), "offset": X_OFFSET.tolist()},  # Scaler.to_dict()
        y_scaler={"kind": "standard", "scale": [Y_SCALE], "offset": [Y_OFFSET]},
        meta=meta,
    )


def real_windows(s: int = 5, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Real-unit windows x [S, T_in, N, F] (speeds, time of day, one-hot weekday) and targets y [S, H, N]."""
    rng = np.random.default_rng(seed)
    x = np.zeros((s, T_IN, N, len(FEATURES)), dtype=np.float32)
    x[..., 0] = rng.uniform(10, 80, (s, T_IN, N))
    x[..., 1] = rng.uniform(0, 1, (s, 1, 1))
    x[np.arange(s), :, :, 2 + rng.integers(0, 7, s)] = 1.0
    y = rng.uniform(10, 80, (s, H, N)).astype(np.float32)
    return x, y


def log_training_run(
    client,
    experiment_id: str,
    bundle: ModelBundle | None,
    tmp_dir,
    *,
    metrics: dict | None = None,
    sample: bool = True,
    bundle_bytes: bytes | None = None,
) -> str:
    """A finished MLflow run shaped like a training run: ``bundle/model.pt`` (+ ``bundle/sample.npz``) and metrics.

    ``bundle_bytes`` replaces the bundle file's content (a corrupt artifact); ``bundle=None`` logs no bundle.
    """
    run_id = client.create_run(experiment_id).info.run_id
    out = Path(tmp_dir) / run_id
    out.mkdir(parents=True)
    if bundle is not None:
        bundle.meta["run_id"] = run_id
        path = bundle.save(out / BUNDLE_FILE)
        if bundle_bytes is not None:
            path.write_bytes(bundle_bytes)
        client.log_artifact(run_id, str(path), "bundle")
        if sample:
            x, y = real_windows()
            np.savez(out / "sample.npz", x=x, y=y)
            client.log_artifact(run_id, str(out / "sample.npz"), "bundle")
    for key, value in (metrics or {"test_mae": 3.0, "test_rmse": 4.0}).items():
        client.log_metric(run_id, key, value)
    client.set_terminated(run_id)
    return run_id


@dataclass
class Store:
    """A tracking store for tests: its URI, a client and an experiment whose artifacts stay in ``root``."""

    uri: str
    client: object
    experiment_id: str
    root: Path


@contextmanager
def sqlite_store(root: Path) -> Iterator[Store]:
    """A fresh sqlite tracking store under ``root``; MLFLOW_TRACKING_URI points at it meanwhile so nothing
    can fall back to ``./mlflow.db`` in the working directory."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        client = MlflowClient(tracking_uri=uri)
        exp = client.create_experiment("tests", artifact_location=str(root / "artifacts"))
        yield Store(uri, client, exp, root)
