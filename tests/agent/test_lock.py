"""Two processes never retrain the same task at once: file locks and PostgreSQL advisory locks."""

import multiprocessing as mp
import os
import signal

import pytest

from cityagent.agent.lock import TaskBusy, check_lock_url, resolve_lock_url, task_lock
from cityagent.errors import CityAgentError, ConfigError

CTX = mp.get_context("fork")  # the child inherits this test's CITYAGENT_HOME


def _hold(task: str, url: str | None, held, release) -> None:
    with task_lock(task, url):
        held.set()
        release.wait(20)


@pytest.fixture(params=["file", "postgres"])
def lock_url(request):
    if request.param == "file":
        return None
    return request.getfixturevalue("pg_url")  # skips with the reason when no PostgreSQL listens


def _start_holder(task: str, url: str | None):
    held, release = CTX.Event(), CTX.Event()
    proc = CTX.Process(target=_hold, args=(task, url, held, release))
    proc.start()
    assert held.wait(15), "the holder process never took the lock"
    return proc, release


def test_second_process_is_told_who_holds_the_task(lock_url):
    proc, release = _start_holder("traffic", lock_url)
    try:
        with pytest.raises(
            TaskBusy, match=rf"task traffic is being retrained by pid {proc.pid} on \S+ since 20\d\d-"
        ) as e:
            with task_lock("traffic", lock_url):
                pytest.fail("two holders of one task")
        assert e.value.holder.pid == proc.pid
        with task_lock("demand", lock_url) as me:  # other tasks are free
            assert me.pid == os.getpid()
    finally:
        release.set()
        proc.join(10)
    assert proc.exitcode == 0
    with task_lock("traffic", lock_url) as me:  # released with the holder
        assert me.pid == os.getpid()


def test_a_killed_holder_leaves_no_stale_lock(lock_url):
    proc, _ = _start_holder("risk", lock_url)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    with task_lock("risk", lock_url) as me:
        assert me.pid == os.getpid()


def test_two_contending_processes_one_wins(lock_url, tmp_path):
    proc, release = _start_holder("demand", lock_url)
    try:
        contender = CTX.Process(target=_hold, args=("demand", lock_url, CTX.Event(), CTX.Event()))
        contender.start()
        contender.join(15)
        assert contender.exitcode == 1  # TaskBusy ended it; it never held the lock
    finally:
        release.set()
        proc.join(10)


def test_lock_url_resolution(monkeypatch):
    monkeypatch.delenv("CITYAGENT_LOCK_URL", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///x/mlflow.db")
    assert resolve_lock_url(None) is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql+psycopg://u@db/mlflow")
    assert resolve_lock_url(None) == "postgresql+psycopg://u@db/mlflow"
    monkeypatch.setenv("CITYAGENT_LOCK_URL", "postgresql://u@db/locks")
    assert resolve_lock_url(None) == "postgresql://u@db/locks"
    assert resolve_lock_url("postgres://u@other/x") == "postgres://u@other/x"
    with pytest.raises(ConfigError, match="must be a postgresql:// URL"):
        resolve_lock_url("sqlite:///x.db")


def test_task_names_are_checked():
    with pytest.raises(ConfigError, match="may hold only letters"):
        with task_lock("../etc/passwd"):
            pass


def test_a_holder_that_names_itself_a_moment_late_is_still_named():
    """Two schedulers at the same instant: the loser may look before the winner has written its name."""
    import fcntl
    import json
    import threading

    from cityagent.home import home_dir

    path = home_dir() / "locks" / "traffic.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the winner holds the lock, its name not yet written
        info = {"pid": 4242, "host": "other-host", "since": "2026-03-02T03:00:00+00:00"}
        timer = threading.Timer(0.1, lambda: os.pwrite(fd, json.dumps(info).encode(), 0))
        timer.start()
        with pytest.raises(TaskBusy, match="by pid 4242 on other-host since 2026-03-02T03:00:00"):
            with task_lock("traffic"):
                pytest.fail("two holders of one task")
        timer.join()
    finally:
        os.close(fd)


def test_a_holder_that_never_names_itself_is_still_reported_busy():
    import fcntl

    from cityagent.home import home_dir

    path = home_dir() / "locks" / "risk.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(TaskBusy, match="another process that did not name itself") as e:
            with task_lock("risk"):
                pytest.fail("two holders of one task")
        assert e.value.holder is None
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("configured", "env", "source"),
    [
        (None, "CITYAGENT_LOCK_URL", r"fix \$CITYAGENT_LOCK_URL$"),
        ("postgresql://u@127.0.0.1:1/cfg", "CITYAGENT_LOCK_URL", r"fix retrain\.lock_url$"),
        (None, "MLFLOW_TRACKING_URI", r"fix \$MLFLOW_TRACKING_URI \(or set retrain\.lock_url\)$"),
    ],
)
def test_an_unreachable_lock_url_names_the_setting_it_came_from(monkeypatch, configured, env, source):
    monkeypatch.delenv("CITYAGENT_LOCK_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv(env, "postgresql://u@127.0.0.1:1/env")  # port 1: refused at once
    url = resolve_lock_url(configured)
    with pytest.raises(CityAgentError, match="cannot reach PostgreSQL for the retrain lock: .*" + source):
        check_lock_url(url)
    with pytest.raises(CityAgentError, match=source):
        with task_lock("traffic", url):
            pytest.fail("locked through an unreachable server")
