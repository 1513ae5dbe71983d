"""A damaged ``bundle/model.pt`` (truncated, random bytes, NaN scalers) is one clear error naming the run's artifact,
never a temporary download path, a traceback, or torch's advice to unpickle unsafely."""

import os

import numpy as np
import pytest

from cityagent.errors import CityAgentError
from cityagent.training.bundle import ModelBundle
from cityagent.training.evaluate import load_run
from cityagent.training.export import export_run
from tests.training.export_factories import log_training_run, sqlite_store, tiny_bundle


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with sqlite_store(tmp_path_factory.mktemp("mlflow")) as s:
        yield s


def damaged_run(store, how: str) -> str:
    good = tiny_bundle("gru")
    data = good.save(store.root / f"good-{how}.pt").read_bytes()
    damaged = {"truncated": data[: len(data) // 2], "random": np.random.default_rng(0).bytes(4096)}[how]
    run_id = log_training_run(store.client, store.experiment_id, good, store.root, bundle_bytes=damaged)
    (store.root / "config.yaml").write_text("model: {name: gru}\n")
    store.client.log_artifact(run_id, str(store.root / "config.yaml"))
    return run_id


@pytest.mark.parametrize("how", ["truncated", "random"])
def test_a_damaged_bundle_is_named_by_its_run_uri_for_export_and_evaluate(store, how):
    run_id = damaged_run(store, how)
    for call in (lambda: export_run(run_id, tracking_uri=store.uri), lambda: load_run(run_id, store.uri)):
        with pytest.raises(CityAgentError) as err:
            call()
        msg = str(err.value)
        assert f"runs:/{run_id}/bundle/model.pt is not a readable cityagent bundle (truncated or corrupt" in msg, msg
        assert "retrain the run, or restore" in msg and "\n" not in msg, msg
        assert "weights_only" not in msg and "cityagent-eval-" not in msg and os.sep + "tmp" not in msg, msg


@pytest.mark.parametrize(
    ("scaler", "key", "value", "match"),
    [
        ("x_scaler", "scale", float("nan"), r"1 non-finite x_scaler scale value\(s\) \(speed\)"),
        ("y_scaler", "offset", float("inf"), r"1 non-finite y_scaler offset value\(s\) \(#0\)"),
        ("x_scaler", "offset", None, r"x_scaler offset of shape \[8\] where 9 value\(s\) are expected"),
    ],
)
def test_a_bundle_with_unusable_scalers_is_refused_on_load(store, scaler, key, value, match):
    bundle = tiny_bundle("gru")
    values = list(getattr(bundle, scaler)[key])
    if value is None:
        values = values[:-1]  # one feature short
    else:
        values[0] = value
    getattr(bundle, scaler)[key] = values
    path = bundle.save(store.root / f"bad-{scaler}-{key}.pt")
    with pytest.raises(CityAgentError, match=match):
        ModelBundle.load(path, source="runs:/abc/bundle/model.pt")
    run_id = log_training_run(store.client, store.experiment_id, bundle, store.root)
    with pytest.raises(CityAgentError, match=rf"model bundle runs:/{run_id}/bundle/model\.pt has .*retrain"):
        export_run(run_id, tracking_uri=store.uri)
