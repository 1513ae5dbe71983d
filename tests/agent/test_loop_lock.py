"""One agent loop per hub: a second `cityagent agent run` on the same hub is refused, naming the first, and writes
nothing; the lock goes with its holder."""

import multiprocessing as mp
import os
import signal

import pytest
from typer.testing import CliRunner

from cityagent.agent.cli import app
from cityagent.agent.live_error import agent_dir, unscorable
from cityagent.agent.lock import HubBusy, hub_lock
from cityagent.agent.loop import Agent
from cityagent.errors import ConfigError
from cityagent.hub import read_hub
from cityagent.hub.validate import validate_hub
from tests.agent.test_loop import config, hub_dir, models, peak, start_server, template  # noqa: F401
from tests.agent.test_loop_restart import run_once_args

CTX = mp.get_context("fork")


def _hold(hub, held, release) -> None:
    with hub_lock(hub):
        held.set()
        release.wait(30)


def _holder(hub):
    held, release = CTX.Event(), CTX.Event()
    proc = CTX.Process(target=_hold, args=(hub, held, release))
    proc.start()
    assert held.wait(15), "the holder process never took the hub's lock"
    return proc, release


def test_a_second_agent_on_one_hub_is_refused_and_writes_nothing(hub_dir, start_server, peak, tmp_path):  # noqa: F811
    args = run_once_args(hub_dir, start_server().address, peak, tmp_path)
    assert "decisions" not in read_hub(hub_dir).tables
    proc, release = _holder(hub_dir)
    try:
        refused = CliRunner().invoke(app, args, terminal_width=300)
        assert refused.exit_code != 0 and isinstance(refused.exception, HubBusy)
        said = str(refused.exception)
        assert said.startswith(f"an agent already runs on hub {hub_dir.resolve()}: pid {proc.pid} on ")
        assert "stop it first, or give this one another --hub" in said
        assert refused.exception.holder.pid == proc.pid
        assert "decisions" not in read_hub(hub_dir).tables  # not one decision from the second agent
    finally:
        release.set()
        proc.join(10)
    assert proc.exitcode == 0

    ran = CliRunner().invoke(app, args, terminal_width=300)  # the holder is gone: the hub is free again
    assert ran.exit_code == 0, ran.output
    assert len(read_hub(hub_dir).table("decisions")) > 0
    assert validate_hub(read_hub(hub_dir)).ok  # the lock file is no table: the hub stays valid


def test_a_killed_agent_leaves_its_hub_free(hub_dir, start_server, peak):  # noqa: F811
    proc, _ = _holder(hub_dir)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    server = start_server()
    reports = Agent(config(hub_dir, server.address)).run(at=str(peak.tz_localize(None)), once=True)
    assert [o.status for o in reports[0].outcomes] == ["decided"] * 3


def test_agents_on_two_hubs_do_not_exclude_each_other(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    with hub_lock(tmp_path / "a") as me, hub_lock(tmp_path / "b"):
        assert me.pid == os.getpid()
    with pytest.raises(ConfigError, match=r"hub .*missing does not exist; create it with `cityagent hub synth`"):
        with hub_lock(tmp_path / "missing"):
            pytest.fail("locked a hub that is not there")


def test_forecasts_left_by_an_older_agent_are_named_once_at_start(hub_dir, start_server, peak):  # noqa: F811
    old = agent_dir() / "forecasts" / "traffic-synthetic" / "20260305T080000Z-v1.npz"  # before hub ids
    old.parent.mkdir(parents=True)
    old.write_bytes(b"")
    said: list[str] = []
    agent = Agent(config(hub_dir, start_server().address), say=said.append)
    agent.run(at=str(peak.tz_localize(None)), interval="1ms", max_cycles=2)
    named = [line for line in said if "older agent" in line]
    assert named == [
        f"1 forecast(s) left by an older agent under {agent_dir() / 'forecasts'} have no hub recorded and are never "
        "scored (e.g. 20260305T080000Z-v1.npz); delete them"
    ]
    assert old.exists() and unscorable() == [old]  # named, not deleted: the user decides


def test_a_cycle_called_on_its_own_takes_the_lock_too(hub_dir, start_server, peak):  # noqa: F811
    """A notebook's or the demo's `agent.cycle()` beside a running `agent run` would decide the same windows twice."""
    agent = Agent(config(hub_dir, start_server().address))
    proc, release = _holder(hub_dir)
    try:
        with pytest.raises(HubBusy, match=f"pid {proc.pid}"):
            agent.cycle(at=str(peak.tz_localize(None)))
        assert "decisions" not in read_hub(hub_dir).tables
    finally:
        release.set()
        proc.join(10)
    report = agent.cycle(at=str(peak.tz_localize(None)))  # free again; and released after the cycle
    assert [o.status for o in report.outcomes] == ["decided"] * 3
    with hub_lock(hub_dir):
        pass
