"""A restarted agent, or `cityagent agent run --once --at T` run twice, decides each window once: what is already
in the hub's decisions table is not written again, and no forecast's live error is recorded twice."""

import pandas as pd
from typer.testing import CliRunner

from cityagent.agent.act import COLUMNS
from cityagent.agent.cli import app
from cityagent.agent.live_error import agent_dir, live_errors
from cityagent.agent.loop import Agent
from cityagent.agent.partfiles import write_part
from cityagent.hub import read_hub
from cityagent.hub.validate import validate_hub
from tests.agent.test_loop import MODELS, config, hub_dir, models, peak, start_server, template  # noqa: F401


def test_a_restarted_agent_writes_no_decision_or_live_error_twice(hub_dir, start_server, peak):  # noqa: F811
    server = start_server()
    first = Agent(config(hub_dir, server.address)).cycle(at=peak)
    assert [o.status for o in first.outcomes] == ["decided"] * 3
    table = read_hub(hub_dir).table("decisions")
    scored = live_errors()
    assert sorted(scored["model"]) == sorted(MODELS)

    restarted = Agent(config(hub_dir, server.address))  # a new process: nothing in memory
    again = restarted.cycle(at=peak)
    for o in again.outcomes:
        n = int((table["model"] == o.model).sum())
        if n:  # its decisions are in the hub: said so, not asked, not written
            assert o.status == "unchanged" and o.decisions.empty and o.version == ""
            assert o.message == (
                f"already decided: its {n} decision(s) (v1) for the window at {peak:%Y-%m-%d %H:%M} are in the "
                "hub; skipped, nothing written again"
            )
    assert any(o.status == "unchanged" for o in again.outcomes)
    pd.testing.assert_frame_equal(read_hub(hub_dir).table("decisions"), table)
    assert again.live_errors == []
    pd.testing.assert_frame_equal(live_errors(), scored)  # no duplicate rows, none lost
    assert not list((agent_dir() / "forecasts").glob("*/*.npz"))  # nothing left waiting to be scored again

    # the long-running loop's first cycle after a restart is just as idempotent
    reports = Agent(config(hub_dir, server.address)).run(at=str(peak.tz_localize(None)), interval="1ms", max_cycles=2)
    assert [o.status for r in reports for o in r.outcomes] == ["unchanged"] * 6
    assert len(read_hub(hub_dir).table("decisions")) == len(table) and len(live_errors()) == len(scored)


def run_once_args(hub_dir, address: str, at, tmp_path) -> list[str]:  # noqa: F811 (hub_dir: a path here)
    """`cityagent agent run --once --at AT` on ``hub_dir``, asking the server at ``address``, retrying briefly."""
    quick = tmp_path / "agent.yaml"
    quick.write_text("loop: {retries: 1, backoff_s: 0.05}\n")
    args = ["agent", "run", "--once", "-c", str(quick), "--hub", str(hub_dir), "--server", address]
    return [*args, "--no-retrain", "--at", str(at.tz_localize(None))]


def test_cli_run_once_at_twice_is_idempotent(hub_dir, start_server, peak, tmp_path):  # noqa: F811
    args = run_once_args(hub_dir, start_server().address, peak, tmp_path)
    first = CliRunner().invoke(app, args, terminal_width=300)
    assert first.exit_code == 0, first.output
    table, scored = read_hub(hub_dir).table("decisions"), live_errors()

    second = CliRunner().invoke(app, args, terminal_width=300)
    assert second.exit_code == 0, second.output
    assert "decisions this cycle" not in second.output
    said = " ".join(second.output.split())  # the console wraps long lines
    assert (
        f"traffic-synthetic: unchanged: already decided: its {(table['model'] == 'traffic-synthetic').sum()} " in said
    )
    assert f"for the window at {peak:%Y-%m-%d %H:%M} are in the hub; skipped, nothing written again" in said
    pd.testing.assert_frame_equal(read_hub(hub_dir).table("decisions"), table)
    pd.testing.assert_frame_equal(live_errors(), scored)


def test_decisions_of_an_older_hub_without_anchors_stay_readable(hub_dir, start_server, peak):  # noqa: F811
    server = start_server()
    agent = Agent(config(hub_dir, server.address))
    agent.cycle(at=peak)
    new = read_hub(hub_dir).table("decisions")
    # what an agent before the anchor column wrote: the same columns but that one, in its own part
    old = new[[c for c in COLUMNS if c != "anchor"]].head(2)
    write_part(hub_dir / "decisions" / f"date={old['ts'].iloc[0]:%Y-%m-%d}", old.reset_index(drop=True))

    hub = read_hub(hub_dir)
    both = hub.table("decisions")
    assert len(both) == len(new) + 2 and both["anchor"].isna().sum() == 2
    assert validate_hub(hub).ok, validate_hub(hub).errors
    # old rows name no window, so they stop nothing; the new ones still do
    later = peak + pd.Timedelta("5min")
    report = Agent(config(hub_dir, server.address)).cycle(at=later)
    assert [o.status for o in report.outcomes] == ["decided"] * 3
    assert set(read_hub(hub_dir).table("decisions")["anchor"].dropna()) == {peak.isoformat(), later.isoformat()}
