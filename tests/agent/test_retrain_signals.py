"""SIGTERM (Kubernetes stopping a pod, cron's timeout) during a retrain: the run is reported as interrupted, never
as done; the command exits 143; nothing is promoted; the task's lock is released; the MLflow run is not FINISHED."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import typer
from lightning.pytorch.utilities.exceptions import SIGTERMException
from mlflow import MlflowClient
from typer.testing import CliRunner

from cityagent.agent.agent_config import load_agent_config
from cityagent.agent.cli_agent_ops import make_retrain_command, run_retrain
from cityagent.agent.lock import task_lock
from cityagent.agent.retrain import retrain
from cityagent.agent.schedule import SIGTERM_EXIT, Scheduler, last_run
from cityagent.interrupts import uninterrupted
from cityagent.training.registry import history
from tests.agent.test_retrain import QUICK, _store, baseline, champion, city, store  # noqa: F401  (fixtures)
from tests.sigterm import sigterm_when

pytestmark = pytest.mark.timeout(300)


def sigterm_self() -> None:
    """What Kubernetes does to the pod: SIGTERM to this process (Python runs the handler in the main thread)."""
    os.kill(os.getpid(), signal.SIGTERM)


def ray_reraised_exit() -> SystemExit:
    """What a driver waiting in ray.get gets when SIGTERM runs the handler ray.init installed (sys.exit(15))."""
    from ray._raylet import raise_sys_exit_with_custom_error_message

    try:
        raise_sys_exit_with_custom_error_message("SystemExit is raised (sys.exit is called). Exit code: 15.", 1)
    except SystemExit as e:
        return e
    raise AssertionError("Ray did not raise SystemExit")


@pytest.mark.parametrize(
    "exit_",
    [SIGTERMException, lambda: SystemExit(signal.SIGTERM), ray_reraised_exit],
    ids=["lightning", "ray", "ray-get"],
)
def test_how_lightning_and_ray_answer_sigterm_is_an_interrupted_run_not_a_done_one(exit_):
    """Lightning's trainer raises SIGTERMException (a SystemExit, code None: exit 0) and the handler ray.init
    installs calls sys.exit(SIGTERM) (re-raised as SystemExit(1) inside ray.get); none may escape the scheduler
    as if the run had finished, nor be taken for an ordinary failure (the loop must stop)."""

    def job(task: str) -> None:
        raise exit_()

    sched = Scheduler({}, job)
    record = sched.run_now("traffic")
    assert (record.outcome, record.interrupted) == ("failed", True)
    assert record.message.startswith("task traffic interrupted by SIGTERM after ")
    assert sched.stop.is_set() and last_run("traffic") is None
    with task_lock("traffic"):  # released
        pass


def test_a_job_exiting_for_another_reason_is_a_failed_run_that_does_not_stop_the_loop():
    def job(task: str) -> None:
        raise SystemExit(3)

    sched = Scheduler({}, job)
    record = sched.run_now("traffic")
    assert (record.outcome, record.interrupted, record.message) == (
        "failed",
        False,
        "task traffic failed: the job exited (SystemExit 3)",
    )
    assert not sched.stop.is_set()


def test_sigterm_interrupts_the_run_in_flight_and_restores_the_previous_handler():
    steps = []

    def job(task: str) -> None:
        steps.append("started")
        sigterm_self()
        steps.append("went on after SIGTERM")  # e.g. exported and promoted

    previous = signal.getsignal(signal.SIGTERM)
    sched = Scheduler({}, job)
    with sched.handling_sigterm():
        record = sched.run_now("traffic")
        again = sched.run_now("traffic")  # a stopped scheduler starts nothing more
    assert steps == ["started"] and record.interrupted and again.interrupted
    assert "interrupted by SIGTERM" in record.message and sched.stop.is_set()
    assert signal.getsignal(signal.SIGTERM) is previous
    with task_lock("traffic"):
        pass


def test_a_sigterm_during_an_uninterrupted_block_lets_the_run_finish():
    steps = []

    def job(task: str) -> None:
        with uninterrupted():  # the alias move and its history entry
            sigterm_self()
            steps.append("promoted")
        steps.append("reported")

    sched = Scheduler({}, job)
    with sched.handling_sigterm():
        record = sched.run_now("traffic")
    assert steps == ["promoted", "reported"] and record.outcome == "done" and not record.interrupted
    assert sched.stop.is_set()  # a loop would still stop after this run


def test_retrain_now_interrupted_exits_143_through_the_cli(tmp_path):
    calls = []

    def job(task: str) -> None:
        calls.append(task)
        sigterm_self()

    cli = typer.Typer()
    cli.command("retrain")(make_retrain_command(lambda cfg: job))
    cli.command("other")(lambda: None)
    config = tmp_path / "agent.yaml"
    config.write_text("retrain:\n  timezone: UTC\n")
    done = CliRunner().invoke(cli, ["retrain", "--now", "traffic", "-c", str(config)], terminal_width=200)
    assert done.exit_code == SIGTERM_EXIT == 143, done.output
    assert "task traffic interrupted by SIGTERM" in done.output and calls == ["traffic"]


def test_a_sigterm_before_the_run_starts_runs_nothing():
    calls = []
    code = run_retrain(load_agent_config(), calls.append, now="traffic", check=lambda task, cfg: sigterm_self())
    assert code == SIGTERM_EXIT and calls == []


def test_schedule_stops_on_sigterm_and_reports_the_interrupted_run(capsys):
    calls = []

    def job(task: str) -> None:
        calls.append(task)
        sigterm_self()

    cfg = load_agent_config(overrides={"retrain": {"schedule": {"traffic": "* * * * * *"}, "timezone": "UTC"}})
    code = run_retrain(cfg, job, schedule=True, max_runs=3, check=lambda task, cfg: None)
    out = capsys.readouterr().out
    assert code == SIGTERM_EXIT and calls == ["traffic"], out
    assert "task traffic interrupted by SIGTERM" in out and "SIGTERM: the retrain loop stopped" in out


def test_schedule_stopped_by_sigterm_between_runs_exits_0(capsys):
    cfg = load_agent_config(overrides={"retrain": {"schedule": {"traffic": "0 3 * * *"}, "timezone": "UTC"}})
    timer = threading.Timer(0.5, sigterm_self)
    timer.start()
    t0 = time.monotonic()
    try:
        code = run_retrain(cfg, print, schedule=True, check=lambda task, cfg: None)
    finally:
        timer.cancel()
    assert code == 0 and time.monotonic() - t0 < 10
    assert "SIGTERM: the retrain loop stopped" in capsys.readouterr().out


def _training_run(client: MlflowClient, dataset: str):
    """The retrain's MLflow run once it has logged an epoch (training has started), else None."""
    exp = client.get_experiment_by_name("traffic")
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], f"tags.`cityagent.task` = 'traffic-{dataset}'")
    return next((r for r in runs if "train_loss" in r.data.metrics), None)


@pytest.mark.parametrize("mode", ["--now", "--schedule"])
def test_sigterm_while_lightning_trains_fails_the_retrain_in_a_real_process(city, store, tmp_path, mode):  # noqa: F811
    dataset = f"sigterm{mode.strip('-')}"
    cfg = load_agent_config(overrides={"hub": str(city), "retrain": {"overrides": {"traffic": QUICK}}})
    retrain("traffic", cfg, overrides=baseline("ha") | {"task.dataset": dataset})  # the champion, v1
    # a deep model with many epochs: still training when SIGTERM comes
    slow = QUICK | {"task.dataset": dataset, "model.name": "stid", "train.max_epochs": 500, "train.patience": 500}
    config = tmp_path / "agent.yaml"
    schedule = "  schedule: {traffic: '* * * * * *'}\n  timezone: UTC\n" if mode == "--schedule" else ""
    config.write_text(f"hub: {city}\nretrain:\n{schedule}  overrides:\n    traffic: {slow}\n")
    cmd = [sys.executable, "-m", "cityagent.agent.cli", "retrain", mode, *(["traffic"] if mode == "--now" else [])]
    client = MlflowClient(store)
    code, out = sigterm_when([*cmd, "-c", str(config)], lambda: _training_run(client, dataset) is not None, 180)
    assert code == SIGTERM_EXIT, out
    assert "task traffic interrupted by SIGTERM" in out and " done in " not in out, out
    exp = client.get_experiment_by_name("traffic").experiment_id
    [run] = client.search_runs(
        [exp], f"tags.`cityagent.task` = 'traffic-{dataset}' and tags.`cityagent.model` = 'stid'"
    )
    assert run.info.status in ("FAILED", "KILLED"), out
    assert champion(f"traffic-{dataset}") == "1"  # nothing registered, nothing promoted
    last = history(f"traffic-{dataset}")[-1]
    assert (last.action, last.reason) == ("failed", "retrain failed: stopped by SIGTERM")
    assert last_run("traffic") is None  # never remembered as a successful run
    with task_lock("traffic"):  # the lock died with the process
        pass


RAY_CLEANUP = """
import sys, time
from cityagent.agent.agent_config import load_agent_config
from cityagent.agent.cli_agent import retrain_job
from cityagent.agent.cli_agent_ops import run_retrain
cfg = load_agent_config(sys.argv[1])
code = run_retrain(cfg, retrain_job(cfg), now="traffic")
time.sleep(4)  # clean-up that outlasts 3 s, e.g. on a slow tracking server
print("cleaned up", flush=True)
sys.exit(code)
"""


CONNECTED_CLEANUP = """
import pathlib, sys, time
import ray
from cityagent.training.ray_cluster import connect
connect(None, 1)
pathlib.Path(sys.argv[1]).touch()
try:
    time.sleep(120)
except SystemExit:  # ray.init's handler: sys.exit(15), as a retrain waiting in ray.get gets it
    time.sleep(4)  # clean-up as slow as marking the run FAILED on a team server
    ray.shutdown()
    print("cleaned up", flush=True)
    sys.exit(143)
"""


@pytest.mark.ray
def test_sigterm_after_connecting_to_ray_lets_a_clean_up_longer_than_3_s_finish(tmp_path):
    """The native handler ray.init adds aborted the process 3 s after a SIGTERM (exit 134); connect() takes it out
    of the path, so a slow clean-up ends as it means to. The same through a whole retrain: the slow test below."""
    connected = tmp_path / "connected"
    cmd = [sys.executable, "-c", CONNECTED_CLEANUP, str(connected)]
    code, out = sigterm_when(cmd, connected.exists, 120)
    assert code == SIGTERM_EXIT and out.rstrip().endswith("cleaned up"), out
    assert "SIGTERM received" not in out, out


@pytest.mark.slow  # a retrain on Ray (about a minute); connect()'s part is checked above in seconds
@pytest.mark.ray
def test_sigterm_while_ray_trains_lets_the_clean_up_finish_and_exits_143(city, store, tmp_path):  # noqa: F811
    """ray.init adds a native SIGTERM handler (absl's) that arms a 3-second alarm to abort the process: clean-up
    after a SIGTERM was cut off there and the retrain exited 134. connect() puts Python's handler back in front."""
    dataset = "sigtermray"
    slow = QUICK | {"task.dataset": dataset, "model.name": "stid", "train.max_epochs": 500, "train.patience": 500}
    slow |= {"train.workers": 1}
    config = tmp_path / "agent.yaml"
    config.write_text(f"hub: {city}\nretrain:\n  overrides:\n    traffic: {slow}\n")
    client = MlflowClient(store)  # an epoch in the run: reported from the Ray worker, so Ray is training
    cmd = [sys.executable, "-c", RAY_CLEANUP, str(config)]
    code, out = sigterm_when(cmd, lambda: _training_run(client, dataset) is not None, 240)
    assert code == SIGTERM_EXIT, out
    assert "task traffic interrupted by SIGTERM" in out and out.rstrip().endswith("cleaned up"), out
    assert "SIGTERM received" not in out, out  # the native handler's stack dump: it was not in the path
    exp = client.get_experiment_by_name("traffic").experiment_id
    [run] = client.search_runs([exp], f"tags.`cityagent.task` = 'traffic-{dataset}'")
    assert run.info.status in ("FAILED", "KILLED"), out
    assert last_run("traffic") is None
    with task_lock("traffic"):
        pass


AFTER_RAY = """
import ast, os, signal, sys, time
from cityagent.agent.retrain import retrain_config
from cityagent.agent.agent_config import load_agent_config
from cityagent.training.fit import fit
signal.signal(signal.SIGTERM, lambda *_: print("handled", flush=True))
cfg = load_agent_config(overrides={"hub": sys.argv[1]})
overrides = {**ast.literal_eval(sys.argv[2]), "train.workers": 1, "train.max_epochs": 1}
fit(retrain_config("traffic", cfg, overrides), progress=False)
os.kill(os.getpid(), signal.SIGTERM)  # e.g. Kubernetes, while the retrain exports and gates after Ray's part
time.sleep(1)
print("still running", flush=True)
"""


@pytest.mark.ray
@pytest.mark.slow
def test_after_ray_training_sigterm_reaches_the_callers_handler(city, tmp_path):  # noqa: F811
    """ray.init replaces the SIGTERM handler and, after ray.shutdown, its sys.exit stays and ends the process:
    the retrain would vanish mid-export with its MLflow run RUNNING and no record. train_ray gives it back."""
    args = [str(city), repr(QUICK | {"task.dataset": "afterray", "model.name": "stid"})]
    done = subprocess.run(
        [sys.executable, "-c", AFTER_RAY, *args], env=dict(os.environ), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.splitlines() == ["handled", "still running"], done.stdout + done.stderr
