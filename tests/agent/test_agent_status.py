"""`cityagent agent status`: live error per served model version and hub, from the agent's own record."""

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from cityagent.agent.cli import app
from cityagent.agent.live_error import LiveError, agent_dir


def _row(version: str, mae: float, rmse: float, n: int, hours_ago: float, model: str = "traffic-synthetic") -> dict:
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    times = ("2026-03-05T08:00:00+08:00", "2026-03-05T08:05:00+08:00", "2026-03-05T09:00:00+08:00")
    return asdict(
        LiveError(model, version, "run", "traffic", *times, n, mae, rmse, at.isoformat(), 1.0, "/data/hub", "id")
    )


def test_status_weighs_each_forecast_by_its_targets_and_keeps_to_the_span():
    rows = [
        _row("2", 2.0, 3.0, 10, 1),
        _row("2", 5.0, 6.0, 30, 2),
        _row("1", 9.0, 9.0, 8, 3),
        _row("1", 1.0, 1.0, 8, 50),
    ]
    path = agent_dir() / "live_error.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = " ".join(CliRunner().invoke(app, ["agent", "status"], terminal_width=200).output.split())
    # v2: (2*10 + 5*30) / 40 = 4.25 MAE, sqrt((9*10 + 36*30) / 40) = 5.41 RMSE; v1 only its row of 3 h ago
    assert "traffic-synthetic v2 /data/hub 2 40 4.25 5.41 100%" in out, out
    assert "traffic-synthetic v1 /data/hub 1 8 9 9 100%" in out, out
    longer = CliRunner().invoke(app, ["agent", "status", "--since", "3d"], terminal_width=200).output
    assert "v1 /data/hub 2 16 5 6.4" in " ".join(longer.split())


def test_status_without_scored_forecasts_says_how_they_come():
    result = CliRunner().invoke(app, ["agent", "status"], terminal_width=200)
    assert result.exit_code == 0 and "no forecast scored in the last 1d" in result.output
    bad = CliRunner().invoke(app, ["agent", "status", "--since", "yesterday"], terminal_width=200)
    assert bad.exit_code == 2 and "'yesterday' is not a duration" in bad.output
