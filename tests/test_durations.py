"""Durations and steps in the spellings configs already hold ('35d', '1H', '15T') read alike under pandas 3 and 4.

pyproject's pytest config turns pandas' Pandas4Warning into an error, so a '35d' that reached pandas unchanged
fails these tests (and any other) rather than a user's agent under pandas 4.
"""

import json
import warnings

import pandas as pd
import pytest

from cityagent import durations
from cityagent.agent.agent_config import load_agent_config
from cityagent.agent.loop import parse_interval
from cityagent.agent.sense import ModelFacts
from cityagent.errors import ConfigError
from cityagent.hub import read_hub, write_hub
from cityagent.hub.tensor import hub_index
from tests.factories import tiny_hub


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("35d", pd.Timedelta(days=35)),
        ("1.5d", pd.Timedelta(hours=36)),
        ("1d12h", pd.Timedelta(hours=36)),
        ("1 d", pd.Timedelta(days=1)),
        ("2w", pd.Timedelta(days=14)),
        ("1H", pd.Timedelta(hours=1)),
        ("15T", pd.Timedelta(minutes=15)),
        ("30S", pd.Timedelta(seconds=30)),
        ("1 day", pd.Timedelta(days=1)),
        ("2 days 03:00:00", pd.Timedelta(hours=51)),
        ("5min", pd.Timedelta(minutes=5)),
        ("1D", pd.Timedelta(days=1)),
        ("10ms", pd.Timedelta(milliseconds=10)),
        ("P1DT2H", pd.Timedelta(hours=26)),
        ("-1d", pd.Timedelta(days=-1)),
    ],
)
def test_every_spelling_reads_without_a_pandas_4_warning(text, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any deprecation at all, not only pandas 4's
        assert durations.duration(text) == expected


def test_the_old_spelling_still_warns_in_pandas_itself():
    """The reason this module exists; when pandas stops warning (or refuses), the test says why it changed."""
    with pytest.warns(DeprecationWarning, match="'d' is deprecated"):
        pd.Timedelta("35d")


@pytest.mark.parametrize("bad", ["soon", "", "5 parsecs", "nat", None])
def test_what_is_no_duration_is_named_with_its_key(bad):
    with pytest.raises(ValueError, match=r"loop\.history .* is not a duration; use e\.g\. '30s'"):
        durations.duration(bad, "loop.history")


def test_steps_read_in_old_spellings():
    assert durations.step_delta("1d") == pd.Timedelta(days=1)
    assert durations.step_delta("1H") == pd.Timedelta(hours=1)
    assert durations.step_delta("15T") == pd.Timedelta(minutes=15)
    assert durations.step_offset("5min").freqstr == "5min"
    with pytest.raises(ValueError):
        durations.step_delta("every so often")


def test_agent_config_in_old_spellings_loads_and_keeps_working(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text(
        "drift: {window: 1d}\nretrain: {min_period: 2d}\nalerts: {risk_window: 1H}\n"
        "loop: {interval: 5T, score_grace: 1H, history: 35d}\n"
    )
    cfg = load_agent_config(path)
    assert (cfg.drift.window, cfg.loop.history) == ("1d", "35d")  # kept as written, shown so in messages
    assert cfg.retrain.min_period_delta.total_seconds() == 2 * 86400
    assert parse_interval("1H") == 3600.0
    with pytest.raises(ConfigError, match=r"loop\.history.*'soon' is not a positive duration"):
        load_agent_config(path, {"loop": {"history": "soon"}})
    with pytest.raises(ConfigError, match=r"loop\.history \(2d\) is shorter than alerts\.usual_days \(7d\)"):
        load_agent_config(path, {"loop": {"history": "2d"}})


def test_a_hub_whose_manifest_says_1H(tmp_path):
    """A hand-written hub.json in pandas 2's spelling reads, and its grid is the hourly one."""
    hub = tiny_hub(steps=12, step="1h")
    write_hub(hub, tmp_path / "h")
    manifest = tmp_path / "h" / "hub.json"
    meta = json.loads(manifest.read_text())
    meta["step"] = "1H"
    manifest.write_text(json.dumps(meta))
    back = read_hub(tmp_path / "h")
    assert back.meta.step == "1H"  # the manifest is not rewritten behind the user's back
    assert back.meta.step_delta == pd.Timedelta(hours=1)
    assert len(hub_index(back)) == 12


def test_served_model_facts_read_old_step_spellings_and_refuse_what_is_no_step():
    params = {"domain": "traffic", "nodes": ["s0"], "input_len": 2, "horizon": 1, "feature_names": ["speed"]}
    facts = ModelFacts.from_parameters("m", {k: json.dumps(v) for k, v in (params | {"step": "1H"}).items()})
    assert durations.step_delta(facts.step) == pd.Timedelta(hours=1)
    bad = {k: json.dumps(v) for k, v in (params | {"step": "hourly"}).items()}
    with pytest.raises(ConfigError, match=r"model m: metadata step 'hourly' is not a duration"):
        ModelFacts.from_parameters("m", bad)  # a ConfigError fails the model's turn; a ValueError would end the loop
