"""The retrain job: a better challenger is promoted, a worse one refused with the reason in the history, a failed
retrain leaves the champion alone, and `cityagent retrain --now` runs under the task's lock."""

import io
import time
from contextlib import ExitStack

import pytest
from mlflow.exceptions import MlflowException
from rich.console import Console
from typer.testing import CliRunner

from cityagent.agent.agent_config import load_agent_config
from cityagent.agent.cli import app
from cityagent.agent.cli_models import history_table
from cityagent.agent.drift_watch import reference_for, reference_path, spawn_retrain
from cityagent.agent.live_error import agent_dir
from cityagent.agent.lock import task_lock
from cityagent.agent.retrain import retrain
from cityagent.agent.schedule import Interrupted, Scheduler
from cityagent.errors import TrackingUnreachable
from cityagent.hub import Hub, read_hub, write_hub
from cityagent.hub.synth import SynthParams, synthesize
from cityagent.training.export import ExportError
from cityagent.training.registry import get_client, history, list_versions, rollback
from tests.mlflow_servers import mlflow_server

QUICK = {"task.params": {"input_len": 6, "horizon": 3, "graph_kind": "road"}, "tracking.plots": False}
QUICK |= {"train.workers": 0}


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    out = tmp_path_factory.mktemp("city") / "hub"
    return synthesize(out, sensors=6, zones=4, days=3, seed=1, progress=False, params=SynthParams(accident_rate=2e-2))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One MLflow store for the module (creating one costs seconds); each test registers its own task name."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def _store(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)


def baseline(name: str) -> dict:
    """Overrides that swap the configured model for a parameter-free baseline (nothing to train)."""
    return {"model.name": name, "model.params": {}}


def agent_cfg(city, dataset: str):
    """Agent config whose traffic retrains are quick baselines on ``city``, registered as traffic-<dataset>."""
    overrides = {"traffic": QUICK | {"task.dataset": dataset}}
    return load_agent_config(overrides={"hub": str(city), "retrain": {"overrides": overrides}})


def champion(name: str) -> str | None:
    version = get_client().get_registered_model(name).aliases.get("champion")
    return None if version is None else str(version)


def test_a_better_challenger_is_promoted_and_a_worse_one_refused(city):
    cfg = agent_cfg(city, "gate")
    first = retrain("traffic", cfg, overrides=baseline("ha"))
    assert (first.model, first.challenger, first.champion, first.promoted) == ("traffic-gate", "1", None, True)
    assert "no champion yet" in first.reasons[-1]

    better = retrain("traffic", cfg, overrides=baseline("last_value"))
    assert better.promoted and better.champion == "1" and champion("traffic-gate") == "2"
    assert better.scores["challenger"]["mae"] < 0.98 * better.scores["champion"]["mae"]  # scored on one window

    worse = retrain("traffic", cfg, overrides=baseline("ha"))
    assert not worse.promoted and worse.champion == "2" and champion("traffic-gate") == "2"
    assert "below the required 2.0%" in worse.reasons[-1]
    aliases = {r.version: r.aliases for r in list_versions("traffic-gate")}
    assert aliases == {"1": [], "2": ["champion"], "3": ["challenger"]}

    last = history("traffic-gate")[-1]
    assert (last.action, last.alias, last.from_version, last.to_version) == ("refuse", "champion", "2", "3")
    assert last.reason.startswith("gate on the newest") and "below the required" in last.reason
    assert last.metrics["mae"] == pytest.approx(worse.scores["challenger"]["mae"])
    assert rollback("traffic-gate", reason="test").to_version == "1"  # the refusal is not a move to roll back

    # the drift reference the agent compares live inputs with was logged into the run (and cached locally)
    reference_path(worse.run_id).unlink()
    ref = reference_for(worse.run_id)
    assert ref is not None and set(ref["channels"]) == {"speed"} and ref["metrics"]["mae"] > 0


def test_a_failed_retrain_leaves_the_champion_untouched(city, monkeypatch):
    cfg = agent_cfg(city, "fail")
    retrain("traffic", cfg, overrides=baseline("ha"))

    def broken(*args, **kwargs):
        raise ExportError("ONNX parity failed")

    monkeypatch.setattr("cityagent.training.export.export_run", broken)
    with pytest.raises(ExportError):
        retrain("traffic", cfg, overrides=baseline("last_value"))
    assert champion("traffic-fail") == "1"
    last = history("traffic-fail")[-1]
    # no version was registered: '-', not the champion's v1, is the one that failed
    assert (last.action, last.from_version, last.to_version) == ("failed", "1", "-") and "parity failed" in last.reason

    job = lambda task: retrain(task, cfg, overrides=baseline("last_value"))  # noqa: E731
    record = Scheduler({}, job, timezone="UTC").run_now("traffic")
    assert record.outcome == "failed" and "parity failed" in record.message
    assert champion("traffic-fail") == "1" and len(list_versions("traffic-fail")) == 1


def test_a_retrain_stopped_by_sigterm_in_its_first_seconds_is_recorded_as_failed(city, monkeypatch):
    cfg = agent_cfg(city, "early")
    retrain("traffic", cfg, overrides=baseline("ha"))

    def sigterm(*args, **kwargs):  # while the training modules load and the gate is read, before anything trains
        raise Interrupted("stopped by SIGTERM")

    monkeypatch.setattr("cityagent.training.gate.load_gate_config", sigterm)
    with pytest.raises(Interrupted):
        retrain("traffic", cfg, overrides=baseline("last_value"))
    last = history("traffic-early")[-1]
    assert (last.action, last.from_version, last.to_version) == ("failed", "1", "-")
    assert last.reason == "retrain failed: stopped by SIGTERM" and champion("traffic-early") == "1"
    wide = Console(width=200, record=True, file=io.StringIO())
    wide.print(history_table([last]))  # what `cityagent models history` shows
    assert "failed, no version registered (champion v1 stays)" in wide.export_text()


def test_a_challenger_expecting_another_input_is_refused_and_the_champion_kept(city):
    cfg = agent_cfg(city, "shape")
    retrain("traffic", cfg, overrides=baseline("ha"))
    params = QUICK["task.params"] | {"input_len": 4}  # the new task's windows are shorter than the champion's
    result = retrain("traffic", cfg, overrides=baseline("last_value") | {"task.params": params})
    assert not result.promoted
    [why] = result.reasons  # every key a client builds its request from, the tensor's shape included
    assert why == (
        "the challenger expects a different input than champion v1 (input_len 4 instead of 6; input_offsets "
        "[-3, -2, -1, 0] instead of [-5, -4, -3, -2, -1, 0]; input_shape [-1, 4, 6, 9] instead of [-1, 6, 6, 9]); "
        "promote it by hand with --force once clients send the new input"
    )
    assert champion("traffic-shape") == "1"
    last = history("traffic-shape")[-1]
    assert (last.action, last.to_version) == ("refuse", "2") and "input_len 4 instead of 6" in last.reason


def test_a_challenger_answering_another_output_is_refused_naming_the_keys(city):
    cfg = agent_cfg(city, "outputs")
    retrain("traffic", cfg, overrides=baseline("ha"))
    quantiles = {
        "model.name": "stid",
        "train.max_epochs": 1,
        "train.loss": "quantile",
        "train.quantiles": [0.1, 0.5, 0.9],
    }
    result = retrain("traffic", cfg, overrides=quantiles)  # same input; a [B, H, N, 3] answer instead of [B, H, N]
    assert not result.promoted and champion("traffic-outputs") == "1"
    [why] = result.reasons
    assert why.startswith("the challenger answers a different output than champion v1 (quantiles [0.1, 0.5, 0.9]")
    assert "output_shape [-1, 3, 6, 3] instead of [-1, 3, 6]" in why and "clients read the new output" in why
    last = history("traffic-outputs")[-1]
    assert (last.action, last.to_version) == ("refuse", "2") and "answers a different output" in last.reason


def test_a_tracking_server_gone_mid_retrain_is_one_line_naming_it(city, tmp_path, monkeypatch):
    import cityagent.training.fit as fit_module

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")  # the test's own bound; the defaults cost ~10 s
    with ExitStack() as server:
        url = server.enter_context(mlflow_server(tmp_path))
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        real_fit = fit_module.fit

        def fit_then_server_dies(*args, **kwargs):  # the outage comes after training, before the drift reference
            result = real_fit(*args, **kwargs)
            server.close()
            return result

        monkeypatch.setattr(fit_module, "fit", fit_then_server_dies)
        cfg = agent_cfg(city, "down")
        t0 = time.monotonic()
        with pytest.raises(TrackingUnreachable) as err:
            retrain("traffic", cfg, overrides=baseline("ha"))
        assert time.monotonic() - t0 < 90
        message = str(err.value)
        assert message.startswith(f"MLflow tracking server {url} not reachable (") and "\n" not in message
        assert message.endswith("and rerun `cityagent retrain --now traffic`") and err.value.uri == url

        record = Scheduler({}, lambda task: retrain(task, cfg, overrides=baseline("ha"))).run_now("traffic")
    assert record.outcome == "failed" and "\n" not in record.message
    assert record.message.startswith(f"task traffic failed: MLflow tracking server {url} not reachable")


def test_a_better_challenger_for_other_sensors_is_refused_not_hot_swapped_onto_clients(city, tmp_path):
    retrain("traffic", agent_cfg(city, "renamed"), overrides=baseline("ha"))
    hub = read_hub(city)  # the same city with every sensor renamed: same shapes, so both models score on one window
    ids = {s: "x" + s[1:] for s in hub.table("sensors")["sensor_id"]}
    tables = dict(hub.tables)
    for table, columns in (("traffic", ["sensor_id"]), ("sensors", ["sensor_id"]), ("edges", ["src", "dst"])):
        tables[table] = tables[table].assign(**{c: tables[table][c].replace(ids) for c in columns})
    renamed = write_hub(Hub(tables, hub.meta), tmp_path / "hub")

    result = retrain("traffic", agent_cfg(renamed, "renamed"), overrides=baseline("last_value"))  # beats ha
    assert not result.promoted and champion("traffic-renamed") == "1"
    assert result.reasons[0].startswith("the challenger expects a different input than champion v1 (nodes: 6 added")
    assert history("traffic-renamed")[-1].action == "refuse"


def test_cli_retrain_now_runs_under_the_task_lock(city, tmp_path):
    config = tmp_path / "agent.yaml"
    task_overrides = QUICK | {"task.dataset": "cli"} | baseline("ha")
    config.write_text(f"hub: {city}\nretrain:\n  overrides:\n    traffic: {task_overrides}\n")
    result = CliRunner().invoke(app, ["retrain", "--now", "traffic", "--config", str(config)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "v1 promoted to champion" in result.output and champion("traffic-cli") == "1"

    with task_lock("traffic"):  # a second scheduler started by mistake: the run is skipped, nothing trained
        busy = CliRunner().invoke(app, ["retrain", "--now", "traffic", "--config", str(config)], terminal_width=200)
    assert busy.exit_code == 0 and "is being retrained by" in busy.output
    assert len(list_versions("traffic-cli")) == 1


def test_a_drift_triggered_retrain_runs_as_its_own_process_under_the_lock(city):
    log = agent_dir() / "retrain" / "traffic.log"
    cfg = agent_cfg(city, "spawned")
    with task_lock("traffic"):
        spawn_retrain(cfg)("traffic")
        deadline = time.monotonic() + 60
        while "being retrained" not in (log.read_text() if log.is_file() else "") and time.monotonic() < deadline:
            time.sleep(0.2)
    assert "task traffic is being retrained by pid" in log.read_text()
    assert load_agent_config(agent_dir() / "retrain" / "agent.yaml") == cfg  # the config in effect, --hub and all


def test_a_retrain_drops_its_checkpoints_once_judged_and_a_failed_one_keeps_them(city, monkeypatch):
    """The MLflow run holds the weights: a scheduler retraining for months leaves no checkpoints behind, except
    those of a retrain that failed, for a look."""
    from cityagent.home import home_dir

    cfg = agent_cfg(city, "files")
    deep = {"model.name": "gru", "model.params": {"hidden_size": 8}, "train.max_epochs": 1}
    done = retrain("traffic", cfg, overrides=deep)
    assert done.promoted and not (home_dir() / "checkpoints" / done.run_id).exists()
    assert not (home_dir() / "exports" / done.run_id).exists()  # the registry holds the ONNX file
    assert get_client().get_run(done.run_id).data.metrics["best_epoch"] == 0  # the run itself is whole

    def broken(*args, **kwargs):
        raise ExportError("ONNX parity failed")

    monkeypatch.setattr("cityagent.training.export.export_run", broken)
    with pytest.raises(ExportError):
        retrain("traffic", cfg, overrides=deep)
    [kept] = (home_dir() / "checkpoints").iterdir()
    assert sorted(p.name for p in kept.glob("*.ckpt")) == ["best.ckpt", "last.ckpt"]


def test_retrain_keep_versions_prunes_what_no_alias_or_rollback_needs(city):
    cfg = agent_cfg(city, "prune")
    cfg.retrain.keep_versions = 1
    first = retrain("traffic", cfg, overrides=baseline("ha"))
    assert first.promoted and first.pruned == []
    better = retrain("traffic", cfg, overrides=baseline("last_value"))
    assert better.promoted and better.pruned == ["1"]  # v2 is champion: with keep 1, v1 is no rollback target
    with pytest.raises(MlflowException):
        get_client().get_run(first.run_id)  # gone with its version, files included
    worse = retrain("traffic", cfg, overrides=baseline("ha"))
    assert not worse.promoted and worse.pruned == []  # the champion stays though v3 is newer
    assert {r.version: r.aliases for r in list_versions("traffic-prune")} == {"2": ["champion"], "3": ["challenger"]}
