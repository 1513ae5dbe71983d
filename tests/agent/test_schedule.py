"""The retrain scheduler: cron times in the city's timezone, one runner per task, failures and busy runs reported."""

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import typer
from typer.testing import CliRunner

from cityagent.agent.agent_config import load_agent_config
from cityagent.agent.cli_agent_ops import make_retrain_command, run_retrain
from cityagent.agent.lock import task_lock
from cityagent.agent.schedule import Scheduler, last_run
from cityagent.errors import ConfigError

SZ = ZoneInfo("Asia/Shanghai")


class FakeClock:
    """A clock that jumps when the scheduler waits, so a day of schedule runs in microseconds."""

    def __init__(self, start: datetime) -> None:
        self.t = start

    def now(self) -> datetime:
        return self.t

    def wait(self, seconds: float) -> bool:
        self.t += timedelta(seconds=seconds)
        return False  # never stopped


def test_jobs_run_at_their_cron_times_in_the_city_timezone():
    clock = FakeClock(datetime(2026, 3, 2, 2, 59, tzinfo=SZ))
    calls = []
    sched = Scheduler(
        {"traffic": "0 3 * * *", "demand": "30 3 * * *"},
        lambda task: calls.append((task, clock.now().astimezone(SZ))),
        timezone="Asia/Shanghai",
        now=clock.now,
        wait=clock.wait,
    )
    records = sched.run_forever(max_runs=4)
    assert [(t, w.strftime("%m-%d %H:%M")) for t, w in calls] == [
        ("traffic", "03-02 03:00"),
        ("demand", "03-02 03:30"),
        ("traffic", "03-03 03:00"),
        ("demand", "03-03 03:30"),
    ]
    assert [r.outcome for r in records] == ["done"] * 4
    assert last_run("demand") is not None


def test_runs_missed_during_a_long_job_are_skipped_not_queued():
    clock = FakeClock(datetime(2026, 3, 2, 0, 0, tzinfo=UTC))
    calls = []

    def slow_job(task: str) -> None:
        calls.append(clock.now())
        clock.t += timedelta(hours=3, minutes=30)  # spans three hourly slots

    Scheduler({"traffic": "0 * * * *"}, slow_job, now=clock.now, wait=clock.wait).run_forever(max_runs=2)
    assert [c.strftime("%H:%M") for c in calls] == ["01:00", "05:00"]


def test_a_failing_job_is_reported_and_the_loop_goes_on():
    clock = FakeClock(datetime(2026, 3, 2, 0, 0, tzinfo=UTC))
    outcomes = iter([RuntimeError("gate rejected the challenger"), None])

    def job(task: str) -> None:
        error = next(outcomes)
        if error:
            raise error

    records = Scheduler({"traffic": "*/10 * * * *"}, job, now=clock.now, wait=clock.wait).run_forever(max_runs=2)
    assert [r.outcome for r in records] == ["failed", "done"]
    assert records[0].message == "task traffic failed: RuntimeError: gate rejected the challenger"
    assert last_run("traffic") == records[1].finished


def test_a_task_locked_elsewhere_is_skipped_with_the_holder_named():
    calls = []
    sched = Scheduler({"traffic": "0 3 * * *"}, calls.append)
    with task_lock("traffic") as holder:
        record = sched.run_now("traffic")
    assert record.outcome == "busy" and calls == []
    assert f"task traffic is being retrained by pid {holder.pid}" in record.message
    assert sched.run_now("traffic").outcome == "done" and calls == ["traffic"]


def test_the_real_clock_loop_runs_every_second_and_stops():
    calls = []
    sched = Scheduler({"traffic": "* * * * * *"}, lambda task: calls.append(time.monotonic()))
    t0 = time.monotonic()
    records = sched.run_forever(max_runs=2)
    assert len(records) == 2 and 0.5 < calls[1] - calls[0] < 1.6 and time.monotonic() - t0 < 3


def test_bad_schedules_are_config_errors():
    with pytest.raises(ConfigError, match="not a cron expression"):
        Scheduler({"traffic": "every day"}, print)
    with pytest.raises(ConfigError, match="not an IANA zone"):
        Scheduler({"traffic": "0 3 * * *"}, print, timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match="no task has a schedule"):
        Scheduler({}, print).run_forever()


def test_retrain_now_and_schedule_through_the_cli(tmp_path):
    calls = []
    app = typer.Typer()
    app.command("retrain")(make_retrain_command(lambda cfg: calls.append))
    app.command("other")(lambda: None)
    config = tmp_path / "agent.yaml"
    config.write_text("retrain:\n  schedule: {traffic: '* * * * * *'}\n  timezone: UTC\n")
    runner = CliRunner()
    done = runner.invoke(app, ["retrain", "--now", "demand", "--config", str(config)])
    assert done.exit_code == 0 and "task demand done" in done.output and calls == ["demand"]
    looped = runner.invoke(app, ["retrain", "--schedule", "--config", str(config), "--max-runs", "1"])
    assert looped.exit_code == 0, looped.output
    assert "traffic: '* * * * * *'" in looped.output and calls == ["demand", "traffic"]
    neither = runner.invoke(app, ["retrain", "--config", str(config)])
    assert isinstance(neither.exception, ConfigError)


def test_a_failed_now_run_exits_1():
    def job(task: str) -> None:
        raise ValueError("no hub")

    assert run_retrain(load_agent_config(), job, now="traffic") == 1


def test_the_shipped_agent_config_loads():
    cfg = load_agent_config()
    assert cfg.retrain.schedule["traffic"] == "0 3 * * *" and cfg.retrain.min_period_delta == timedelta(days=1)
    with pytest.raises(ConfigError, match=r"mqtt\.batch"):
        load_agent_config(overrides={"mqtt": {"batch": 0}})
    with pytest.raises(ConfigError, match=r"drift\.window.*not a positive duration"):
        load_agent_config(overrides={"drift": {"window": "soon"}})


def test_retrain_now_with_an_unknown_task_is_one_line_and_exit_2(tmp_path):
    config = tmp_path / "agent.yaml"
    config.write_text("retrain:\n  timezone: UTC\n")
    env = os.environ | {"CITYAGENT_HOME": str(tmp_path / "home")}
    cmd = [sys.executable, "-m", "cityagent.agent.cli", "retrain", "--now", "nosuch", "-c", str(config)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert (
        line.startswith("error: task 'nosuch' has no training config") and "pass one of: demand, risk, traffic" in line
    )
    assert not (tmp_path / "home" / "schedule" / "nosuch.json").exists()


def test_a_config_error_in_a_scheduled_run_is_reported_without_stopping_the_loop():
    def job(task: str) -> None:
        raise ConfigError(f"task {task!r} has no training config")

    record = Scheduler({}, job).run_now("nosuch")
    assert record.outcome == "failed" and record.message == "task nosuch failed: task 'nosuch' has no training config"
    with pytest.raises(ConfigError, match="no training config"):
        Scheduler({}, job).run_now("nosuch", raise_config_errors=True)


def _retrain_app(calls: list) -> typer.Typer:
    app = typer.Typer()
    app.command("retrain")(make_retrain_command(lambda cfg: calls.append))
    app.command("other")(lambda: None)
    return app


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        # refused when the agent config loads (as `cityagent agent run` refuses them), so before any lock or run
        ("retrain:\n  schedule: {trafic: '* * * * * *'}\n", "names task 'trafic' (did you mean 'traffic'?)"),
        (
            "retrain:\n  schedule: {traffic: '* * * * * *'}\n  overrides: {traffic: {train.max_epoch: 1}}\n",
            "retrain.overrides.traffic.train.max_epoch does not exist; did you mean 'train.max_epochs'?",
        ),
        (  # an override of an unscheduled task is used by drift's `--now`: checked too
            "retrain:\n  schedule: {traffic: '* * * * * *'}\n  overrides: {demnd: {train.lr: 0.1}}\n",
            "names task 'demnd' (did you mean 'demand'?)",
        ),
    ],
)
def test_schedule_refuses_a_bad_task_or_override_at_startup(tmp_path, yaml_text, message):
    calls = []
    config = tmp_path / "agent.yaml"
    config.write_text(yaml_text + "  timezone: UTC\n")
    looped = CliRunner().invoke(_retrain_app(calls), ["retrain", "--schedule", "-c", str(config), "--max-runs", "1"])
    assert isinstance(looped.exception, ConfigError) and message in str(looped.exception)
    assert "\n" not in str(looped.exception) and "next at" not in looped.output and calls == []


def test_now_refuses_a_bad_override_the_same_way(tmp_path):
    calls = []
    config = tmp_path / "agent.yaml"
    config.write_text("retrain:\n  overrides: {traffic: {train.max_epoch: 1}}\n")
    done = CliRunner().invoke(_retrain_app(calls), ["retrain", "--now", "traffic", "-c", str(config)])
    assert isinstance(done.exception, ConfigError) and "did you mean 'train.max_epochs'?" in str(done.exception)
    assert calls == []


def test_now_checks_the_task_before_taking_its_lock(tmp_path):
    calls = []
    done = CliRunner().invoke(_retrain_app(calls), ["retrain", "--now", "trafic"])
    assert isinstance(done.exception, ConfigError) and "task 'trafic' has no training config" in str(done.exception)
    assert calls == [] and not (tmp_path / "home" / "locks" / "trafic.lock").exists()


def test_a_busy_or_failed_run_is_not_also_logged_as_a_warning(caplog):
    def job(task: str) -> None:
        raise RuntimeError("no hub")

    sched = Scheduler({}, job)
    with caplog.at_level("DEBUG", logger="cityagent.agent.schedule"):
        with task_lock("traffic"):
            assert sched.run_now("traffic").outcome == "busy"
        assert sched.run_now("traffic").outcome == "failed"
    # with no logging configured Python prints warnings to stderr itself, doubling the CLI's own line
    assert [r.levelname for r in caplog.records if r.levelname not in ("DEBUG", "INFO")] == []


def test_a_busy_run_prints_its_line_once(tmp_path):
    env = os.environ | {"CITYAGENT_HOME": str(tmp_path / "home")}
    cmd = [sys.executable, "-m", "cityagent.agent.cli", "retrain", "--now", "traffic"]
    with task_lock("traffic"):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    out = " ".join((done.stdout + done.stderr).split())  # the console may wrap the line
    assert done.returncode == 0 and out.count("task traffic is being retrained by pid") == 1, out
