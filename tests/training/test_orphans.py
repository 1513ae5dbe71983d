"""Runs left RUNNING by a SIGKILLed training are ended as KILLED by the next training on the same host."""

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow import MlflowClient

from cityagent.training.config import load_config
from cityagent.training.orphans import HOST, PID, PID_START, mark_orphaned, process_start, process_tags
from cityagent.training.run_start import start_run
from cityagent.training.task import HubFingerprint
from cityagent.training.tracked_run import TrackedRun
from cityagent.training.tracking import experiment_id

pytestmark = pytest.mark.usefixtures("shared_mlflow_store")

CHILD = textwrap.dedent(
    """
    import sys, time
    from cityagent.training.tracked_run import TrackedRun

    run = TrackedRun.start(sys.argv[1], sys.argv[2], "doomed")
    print(run.run_id, flush=True)
    time.sleep(300)
    """
)


@pytest.fixture
def store() -> tuple[str, MlflowClient, str]:
    """The shared sqlite store's URI, a client on it, and an experiment of this test's own."""
    uri = os.environ["MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri)
    return uri, client, experiment_id(client, f"orphans-{uuid.uuid4().hex[:8]}")  # artifacts beside the store


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that ran and was reaped."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert process_start(p.pid) is None
    return p.pid


def run_with(client: MlflowClient, exp: str, tags: dict[str, str]) -> str:
    return client.create_run(exp, run_name="r", tags=tags).info.run_id


def status(client: MlflowClient, run_id: str) -> str:
    return client.get_run(run_id).info.status


def test_a_run_of_a_sigkilled_process_is_marked_killed(store, caplog):
    uri, client, exp = store
    name = client.get_experiment(exp).name
    child = subprocess.Popen([sys.executable, "-c", CHILD, uri, name], stdout=subprocess.PIPE, text=True)
    try:
        run_id = child.stdout.readline().strip()
        assert run_id, "the child process did not start its run"
        tags = client.get_run(run_id).data.tags
        assert tags[PID] == str(child.pid) and tags[HOST] and tags[PID_START]
        assert mark_orphaned(client, [exp]) == []  # alive: nothing to do yet
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert status(client, run_id) == "RUNNING"
    with caplog.at_level(logging.WARNING, logger="cityagent.training.orphans"):
        assert mark_orphaned(client, [exp]) == [run_id]
    run = client.get_run(run_id)
    assert run.info.status == "KILLED" and run.info.end_time is not None
    assert run.data.tags["cityagent.ended_by"] == "orphan-check"
    assert f"process {child.pid} no longer exists" in run.data.tags["mlflow.note.content"]
    assert [r.getMessage() for r in caplog.records] == [
        f"MLflow run {run_id} was left RUNNING by process {child.pid} on {tags[HOST]}, which is gone: marked KILLED"
    ]
    assert mark_orphaned(client, [exp]) == []  # KILLED now: not searched again


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_process_not_yet_reaped_is_dead(store):
    """A zombie keeps its /proc entry and start time until its parent waits for it (a wrapper script that was
    stopped too): it is dead all the same."""
    uri, client, exp = store
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, uri, client.get_experiment(exp).name], stdout=subprocess.PIPE
    )
    try:
        run_id = child.stdout.readline().decode().strip()
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the killed child never became a zombie"
            time.sleep(0.05)
        assert mark_orphaned(client, [exp]) == [run_id]
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def test_a_run_whose_process_lives_stays_running(store):
    uri, client, exp = store
    run = TrackedRun.start(uri, client.get_experiment(exp).name, "alive")
    assert client.get_run(run.run_id).data.tags[PID] == str(os.getpid())  # tagged, so the check does look at it
    assert mark_orphaned(client, [exp]) == []
    assert status(client, run.run_id) == "RUNNING"


def test_a_run_of_another_host_stays_running(store, dead_pid):
    _, client, exp = store
    run_id = run_with(client, exp, process_tags() | {HOST: "elsewhere.city.lan", PID: str(dead_pid)})
    assert mark_orphaned(client, [exp]) == []
    assert status(client, run_id) == "RUNNING"


def test_a_run_without_the_process_tags_stays_running(store, dead_pid):
    _, client, exp = store
    untagged = run_with(client, exp, {})
    no_pid = run_with(client, exp, {k: v for k, v in process_tags().items() if k != PID})
    dead = run_with(client, exp, process_tags() | {PID: str(dead_pid)})  # the control: the check did run
    assert mark_orphaned(client, [exp]) == [dead]
    assert status(client, untagged) == status(client, no_pid) == "RUNNING"


def test_a_reused_pid_started_at_another_time_is_dead(store):
    _, client, exp = store
    tags = process_tags()
    assert tags[PID] == str(os.getpid())
    reused = run_with(client, exp, tags | {PID_START: str(int(tags[PID_START]) - 1)})  # an earlier process, this pid
    assert mark_orphaned(client, [exp]) == [reused]
    assert status(client, reused) == "KILLED"
    assert "now belongs to a process started later" in client.get_run(reused).data.tags["mlflow.note.content"]


def _task_and_fingerprint():
    task = SimpleNamespace(nodes=["s1"], feature_names=["speed"], notes=["n"], counts=lambda: {"train": 1})
    return task, HubFingerprint("0" * 64, "test", 1, 1, "2024-01-01T00:00:00+08:00", "2024-01-01T00:00:00+08:00")


def test_starting_a_training_marks_its_experiments_orphans(store, dead_pid, monkeypatch, caplog):
    uri, client, exp = store
    cfg = load_config(None, {"tracking.experiment": client.get_experiment(exp).name})
    orphan = run_with(client, exp, process_tags() | {PID: str(dead_pid)})
    other_exp = experiment_id(client, f"orphans-{uuid.uuid4().hex[:8]}")
    elsewhere = run_with(client, other_exp, process_tags() | {PID: str(dead_pid)})  # not this training's experiment
    with caplog.at_level(logging.WARNING, logger="cityagent.training.orphans"):
        run = start_run(uri, cfg, *_task_and_fingerprint(), "deep")
    assert status(client, orphan) == "KILLED" and status(client, run.run_id) == "RUNNING"
    assert status(client, elsewhere) == "RUNNING"
    assert any(orphan in r.getMessage() and str(dead_pid) in r.getMessage() for r in caplog.records)
    searches = []
    search = MlflowClient.search_runs
    monkeypatch.setattr(MlflowClient, "search_runs", lambda *a, **k: searches.append(a) or search(*a, **k))
    child = start_run(uri, cfg, *_task_and_fingerprint(), "deep", parent_run_id=run.run_id)
    assert searches == []  # a sweep's trials are runs of the process checked at the parent's start: no search each
    assert status(client, child.run_id) == "RUNNING"
    run.end()


def test_a_store_error_in_the_check_never_fails_the_training(store, dead_pid, monkeypatch, caplog):
    uri, client, exp = store
    cfg = load_config(None, {"tracking.experiment": client.get_experiment(exp).name})
    orphan = run_with(client, exp, process_tags() | {PID: str(dead_pid)})

    def broken(*args, **kwargs):
        raise OSError("disk I/O error")

    with monkeypatch.context() as m, caplog.at_level(logging.DEBUG, logger="cityagent.training.orphans"):
        m.setattr(MlflowClient, "search_runs", broken)
        run = start_run(uri, cfg, *_task_and_fingerprint(), "deep")
    assert status(client, run.run_id) == "RUNNING" and status(client, orphan) == "RUNNING"
    assert [r.levelno for r in caplog.records] == [logging.DEBUG] and "disk I/O error" in caplog.text
    with monkeypatch.context() as m:  # marking fails too: logged, and the check goes on without raising
        m.setattr(MlflowClient, "set_terminated", broken)
        assert mark_orphaned(client, [exp]) == []
    assert status(client, orphan) == "RUNNING"
    run.end()


def test_a_sigterm_while_the_run_is_created_ends_it_failed_not_running(store, monkeypatch):
    from cityagent.agent.schedule import Interrupted
    from cityagent.interrupts import interrupt

    uri, client, exp = store
    cfg = load_config(None, {"tracking.experiment": client.get_experiment(exp).name})
    create = MlflowClient.create_run

    def sigterm_then_create(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # lands inside the call: the run is created all the same
        return create(*args, **kwargs)

    monkeypatch.setattr(MlflowClient, "create_run", sigterm_then_create)
    previous = signal.signal(signal.SIGTERM, lambda *_: interrupt(Interrupted("stopped by SIGTERM")))
    try:
        with pytest.raises(Interrupted) as caught:
            start_run(uri, cfg, *_task_and_fingerprint(), "deep")
    finally:
        signal.signal(signal.SIGTERM, previous)
    [run] = client.search_runs([exp])
    assert run.info.status == "FAILED" and caught.value.ended_run == (run.info.run_id, "FAILED")
