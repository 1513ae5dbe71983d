"""The agent on a disk that fails it: a torn line in live_error.jsonl is skipped with one warning, a full home or hub
fails the model's turn (no temporary file left) and the window is decided next cycle, a read-only hub is one line,
and a crash right after the decisions were written loses no forecast."""

import json
import logging

import pandas as pd
import pytest
from typer.testing import CliRunner

from cityagent.agent import loop
from cityagent.agent.cli import app
from cityagent.agent.live_error import agent_dir, hub_identity, live_errors, live_summary, remember, score_pending
from cityagent.agent.loop import Agent
from cityagent.errors import CityAgentError, ConfigError
from cityagent.hub import read_hub
from tests.agent.disk_faults import disk_fault
from tests.agent.test_agent_status import _row
from tests.agent.test_live_error_scope import forecast_at
from tests.agent.test_loop import FIVE, MODELS, config, hub_dir, models, peak, start_server, template  # noqa: F401

TORN = '{"model": "traffic-synthetic", "version": "1", "run_id": "70d3'  # what a full disk or a power loss leaves


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "not JSON" in r.getMessage()]


def test_a_torn_line_in_live_error_is_skipped_with_one_warning_and_records_go_on_a_line_of_their_own(
    hub_dir,  # noqa: F811
    models,  # noqa: F811
    peak,  # noqa: F811
    caplog,
):
    path = agent_dir() / "live_error.jsonl"
    path.write_text(TORN)  # no newline: the append it was is cut short
    hub = read_hub(hub_dir)
    hub_id = hub_identity(hub_dir, hub.meta)
    for k, anchor in enumerate((peak, peak + FIVE)):
        remember(*forecast_at(hub, models, "traffic-synthetic", anchor, 40.0), hub_id)
        assert len(score_pending(hub, hub_id)) == 1  # its actuals are in the hub: scored at once
        assert len(live_errors()) == k + 1 and len(live_summary(pd.Timestamp(0, tz="UTC"))) == 1
    lines = path.read_text().splitlines()
    assert lines[0] == TORN and [json.loads(line)["anchor"] for line in lines[1:]] == [
        peak.isoformat(),
        (peak + FIVE).isoformat(),
    ]
    assert _warnings(caplog) == [f"{path} line 1 is not JSON (a write cut short?); skipped it: remove that line"]
    # the same forecast is still scored only once
    assert remember(*forecast_at(hub, models, "traffic-synthetic", peak, 40.0), hub_id) is None


def test_agent_status_reads_past_a_torn_line(caplog):
    path = agent_dir() / "live_error.jsonl"
    path.write_text(
        json.dumps(_row("2", 2.0, 3.0, 10, 1)) + "\n" + TORN + "\n" + json.dumps(_row("2", 4.0, 5.0, 10, 1))
    )
    result = CliRunner().invoke(app, ["agent", "status"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "traffic-synthetic v2 /data/hub 2 20 3" in " ".join(result.output.split())
    assert _warnings(caplog) == [f"{path} line 2 is not JSON (a write cut short?); skipped it: remove that line"]


@pytest.mark.parametrize("where", ["home", "hub"])
def test_a_full_disk_fails_the_models_turn_and_the_next_cycle_decides_its_window(hub_dir, start_server, peak, where):  # noqa: F811
    agent = Agent(config(hub_dir, start_server().address))
    full = agent_dir() / "forecasts" if where == "home" else hub_dir / "decisions"
    with disk_fault(full, "full"):
        report = agent.cycle(at=peak)
    assert [o.status for o in report.outcomes] == ["failed"] * 3
    for o in report.outcomes:
        assert o.message.startswith(f"cannot write {full}/") and o.decisions.empty
        assert o.message.endswith(
            ": No space left on device; free space on its disk; its window is tried again next cycle"
        )
    assert "decisions" not in read_hub(hub_dir).tables
    assert not list(full.rglob(".*.tmp"))  # no temporary file left behind
    # the forecast is kept before the decisions are written: with the hub full, it is scored all the same
    assert len(report.live_errors) == (0 if where == "home" else 3)

    again = agent.cycle(at=peak)  # space is back
    assert [o.status for o in again.outcomes] == ["decided"] * 3
    assert len(read_hub(hub_dir).table("decisions")) == len(again.decisions) > 0
    assert sorted(live_errors()["model"]) == sorted(MODELS)  # each forecast scored once, whichever write failed


def test_a_full_disk_under_live_error_fails_the_cycle_in_one_line_and_scores_it_later(hub_dir, start_server, peak):  # noqa: F811
    agent, said = Agent(config(hub_dir, start_server().address)), []
    agent.say = said.append
    with disk_fault(agent_dir() / "live_error.jsonl", "full"):
        assert agent.run(at=str(peak.tz_localize(None)), interval="1ms", max_cycles=1) == []
        with pytest.raises(CityAgentError, match=r"cannot write .*live_error\.jsonl: No space left on device; free"):
            Agent(config(hub_dir, start_server().address)).run(at=str(peak.tz_localize(None)), once=True)
    assert said[-1].startswith("cycle failed: cannot write ") and "trying again in 0.001 s" in said[-1]
    assert live_errors().empty and len(read_hub(hub_dir).table("decisions")) > 0  # decided, not yet scored
    reports = Agent(config(hub_dir, start_server().address)).run(at=str(peak.tz_localize(None)), once=True)
    assert sorted(r.model for r in reports[0].live_errors) == sorted(MODELS)


def test_a_read_only_hub_is_refused_in_one_line_naming_it(hub_dir, start_server, peak):  # noqa: F811
    with disk_fault(hub_dir, "readonly"), pytest.raises(ConfigError) as e:
        Agent(config(hub_dir, start_server().address)).run(at=str(peak.tz_localize(None)), once=True)
    assert str(e.value) == (
        f"cannot create the lock file {hub_dir.resolve()}/.agent.lock: Read-only file system; make the hub writable "
        "(the agent appends its decisions there) or pass another --hub"
    )


class _Killed(BaseException):
    """SIGKILL, as far as the agent can tell: nothing after it runs."""


def test_a_crash_right_after_the_decisions_are_written_loses_no_forecast(hub_dir, start_server, peak, monkeypatch):  # noqa: F811
    written = loop.append_decisions

    def append_then_die(*args, **kwargs):
        written(*args, **kwargs)
        raise _Killed

    server = start_server()
    with monkeypatch.context() as mp, pytest.raises(_Killed):
        mp.setattr(loop, "append_decisions", append_then_die)
        Agent(config(hub_dir, server.address)).cycle(at=peak)
    first = read_hub(hub_dir).table("decisions")["model"].unique().tolist()
    assert len(first) == 1  # the first model decided, then the agent died

    restarted = Agent(config(hub_dir, server.address)).cycle(at=peak)
    assert [o.status for o in restarted.outcomes if o.model in first] == ["unchanged"]
    assert sorted(live_errors()["model"]) == sorted(MODELS)  # the window decided before the crash is scored too
