"""Registry flows on the local sqlite store: promote, rollback, an append-only history, errors that change
nothing, promotions that would change the served input refused, and the `cityagent models` CLI."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from rich.console import Console
from typer import Typer
from typer.testing import CliRunner

from cityagent.agent.cli_models import export_command, history_table, models_app, versions_table
from cityagent.errors import CityAgentError, ConfigError
from cityagent.models.registry import build_model
from cityagent.models.scaled import ScaledModel
from cityagent.training.export import export_run
from cityagent.training.registry import Move, VersionRow, history, list_versions, promote, rollback
from cityagent.training.registry import aliases as aliases_mod
from cityagent.training.registry.contract import input_differences, output_differences
from cityagent.training.registry.history import TAG_PREFIX
from tests.training.export_factories import (
    X_OFFSET,
    X_SCALE,
    Y_OFFSET,
    Y_SCALE,
    log_training_run,
    sqlite_store,
    tiny_bundle,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with sqlite_store(tmp_path_factory.mktemp("mlflow")) as s:
        yield s


def add_versions(store, name: str, maes: list[float]) -> list[str]:
    """Registered versions of ``name`` backed by finished runs with test metrics (no ONNX: fast)."""
    c = store.client
    if name not in [m.name for m in c.search_registered_models()]:
        c.create_registered_model(name)
    out = []
    for mae in maes:
        run_id = c.create_run(store.experiment_id).info.run_id
        c.log_metric(run_id, "test_mae", mae)
        c.log_metric(run_id, "test_rmse", mae * 1.3)
        c.log_metric(run_id, "train_loss", 0.1)  # not key metrics: training loss, per-horizon-step test error
        c.log_metric(run_id, "test_mae_h1", mae)
        c.set_terminated(run_id)
        out.append(str(c.create_model_version(name, source=str(store.root / "src"), run_id=run_id).version))
    return out


def snapshot(store):
    """Everything a failed command must leave untouched: versions, aliases and tags of every model."""
    models = {m.name: (dict(m.aliases), dict(m.tags)) for m in store.client.search_registered_models()}
    return list_versions(tracking_uri=store.uri), models


def test_promote_promote_rollback_and_history(store):
    v1, v2, _ = add_versions(store, "traffic-flow", [3.0, 2.5, 2.8])
    m1 = promote("traffic-flow", v1, reason="first champion", actor="alice", tracking_uri=store.uri)
    m2 = promote("traffic-flow", v2, reason="2.5 beats 3.0", actor="bob", tracking_uri=store.uri)
    assert (m1.from_version, m1.to_version, m2.from_version, m2.to_version) == (None, v1, v1, v2)
    assert promote("traffic-flow", v2, reason="again", tracking_uri=store.uri) is None  # no-op, not logged

    back = rollback("traffic-flow", reason="v2 drifts at night", actor="carol", tracking_uri=store.uri)
    assert (back.from_version, back.to_version, back.action) == (v2, v1, "rollback")
    assert store.client.get_registered_model("traffic-flow").aliases == {"champion": int(v1)}

    moves = history("traffic-flow", tracking_uri=store.uri)
    assert [(m.seq, m.actor, m.reason, m.from_version, m.to_version) for m in moves] == [
        (1, "alice", "first champion", None, v1),
        (2, "bob", "2.5 beats 3.0", v1, v2),
        (3, "carol", "v2 drifts at night", v2, v1),
    ]
    assert moves[1].metrics == {"test_mae": 2.5, "test_rmse": pytest.approx(3.25)}  # metrics at that moment
    tags = store.client.get_registered_model("traffic-flow").tags
    assert sorted(k for k in tags if k.startswith(TAG_PREFIX)) == [f"{TAG_PREFIX}00000{i}" for i in (1, 2, 3)]

    rows = [r for r in list_versions("traffic-flow", tracking_uri=store.uri)]
    assert [(r.version, r.aliases) for r in rows] == [(v1, ["champion"]), (v2, []), ("3", [])]
    assert rows[0].metrics == {"test_mae": 3.0, "test_rmse": pytest.approx(3.9)} and rows[0].created is not None


def test_rollback_undoes_in_order_and_skips_deleted_versions(store):
    v1, v2, v3 = add_versions(store, "demand-undo", [3.0, 2.0, 1.0])
    for v in (v1, v2, v3):
        promote("demand-undo", v, reason=f"v{v}", tracking_uri=store.uri)
    store.client.delete_model_version("demand-undo", v2)
    assert rollback("demand-undo", reason="bad", tracking_uri=store.uri).to_version == v1  # v2 is gone
    before = snapshot(store)
    with pytest.raises(CityAgentError, match="no earlier champion"):
        rollback("demand-undo", reason="again", tracking_uri=store.uri)
    assert snapshot(store) == before


def test_challenger_alias_has_its_own_history(store):
    v1, v2 = add_versions(store, "risk-alias", [0.3, 0.2])
    promote("risk-alias", v1, "challenger", reason="try", tracking_uri=store.uri)
    promote("risk-alias", v2, "challenger", reason="try more", tracking_uri=store.uri)
    promote("risk-alias", v1, reason="champion", tracking_uri=store.uri)
    assert rollback("risk-alias", "challenger", reason="undo", tracking_uri=store.uri).to_version == v1
    assert store.client.get_registered_model("risk-alias").aliases == {"champion": int(v1), "challenger": int(v1)}


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda uri: promote("errs", "99", reason="x", tracking_uri=uri), "no version '99'; existing versions: 1, 2"),
        (lambda uri: promote("nope", "1", reason="x", tracking_uri=uri), "no registered model 'nope'.*known models"),
        (lambda uri: rollback("errs", reason="x", tracking_uri=uri), "no earlier champion"),
        (lambda uri: rollback("errs", "staging", reason="x", tracking_uri=uri), "no alias 'staging'"),
        (lambda uri: rollback("nope", reason="x", tracking_uri=uri), "no registered model 'nope'"),
        (lambda uri: promote("errs", "2", "latest", reason="x", tracking_uri=uri), "alias 'latest' is not allowed"),
        (lambda uri: promote("errs", "2", reason="  ", tracking_uri=uri), "non-empty reason"),
        (lambda uri: promote("errs", "2", reason="x" * 6000, tracking_uri=uri), "shorten the reason"),
    ],
)
def test_errors_leave_the_registry_exactly_as_it_was(store, call, match):
    if "errs" not in [m.name for m in store.client.search_registered_models()]:
        v1, _ = add_versions(store, "errs", [1.0, 2.0])
        promote("errs", v1, reason="only champion", tracking_uri=store.uri)
    before = snapshot(store)
    with pytest.raises(CityAgentError, match=match):
        call(store.uri)
    assert snapshot(store) == before


def test_a_failed_history_write_puts_the_alias_back(store, monkeypatch):
    v1, v2 = add_versions(store, "atomic", [1.0, 0.5])
    promote("atomic", v1, reason="first", tracking_uri=store.uri)
    before = snapshot(store)

    def broken(*args, **kwargs):
        raise MlflowException("tracking server went away")

    monkeypatch.setattr(aliases_mod, "append_move", broken)
    with pytest.raises(CityAgentError, match="nothing changed"):
        promote("atomic", v2, reason="second", tracking_uri=store.uri)
    assert snapshot(store) == before


def test_cli_list_promote_rollback_history(store):
    v1, v2 = add_versions(store, "cli-model", [4.0, 3.0])
    runner, uri = CliRunner(env={"COLUMNS": "200"}), ["--tracking-uri", store.uri]  # no table wrapping
    ok = runner.invoke(models_app, ["promote", "cli-model", v1, "--reason", "baseline", *uri])
    assert ok.exit_code == 0, ok.output
    assert runner.invoke(models_app, ["promote", "cli-model", v2, "--reason", "better", *uri]).exit_code == 0
    assert runner.invoke(models_app, ["rollback", "cli-model", "--reason", "regression", *uri]).exit_code == 0
    listed = runner.invoke(models_app, ["list", "cli-model", *uri])
    assert listed.exit_code == 0 and "champion" in listed.output and "mae=4" in listed.output
    hist = runner.invoke(models_app, ["history", "cli-model", *uri])
    assert hist.exit_code == 0 and all(w in hist.output for w in ("baseline", "better", "regression"))

    bad = runner.invoke(models_app, ["promote", "cli-model", "42", "--reason", "x", *uri])
    assert bad.exit_code == 2 and "no version '42'" in bad.output
    assert runner.invoke(models_app, ["rollback", "unknown-model", *uri]).exit_code == 2
    assert runner.invoke(models_app, ["promote", "cli-model", v2, *uri]).exit_code != 0  # --reason is required


def test_list_and_history_show_the_newest_and_every_aliased_version_unless_asked_for_all(store):
    """A daily retrain registers a version a day: the CLI shows the newest (and what aliases point at), not a year."""
    from cityagent.agent.cli_models import HISTORY_LAST, LIST_LAST
    from cityagent.training.registry import version_listing

    versions = add_versions(store, "busy", [5.0 - i / 100 for i in range(LIST_LAST + 4)])
    promote("busy", versions[1], reason="early champion", tracking_uri=store.uri)
    for day in range(HISTORY_LAST + 2):  # a fresh challenger a day, as retrains register them
        v = versions[2 + day % (len(versions) - 2)]
        promote("busy", v, "challenger", reason=f"day {day}", tracking_uri=store.uri)
    listing = version_listing("busy", last=LIST_LAST, tracking_uri=store.uri)
    assert [r.version for r in listing.rows] == [versions[1], *versions[4:]] and listing.omitted == {"busy": 3}
    assert version_listing("busy", last=0, tracking_uri=store.uri).rows[0].aliases == ["champion"]
    assert version_listing("busy", tracking_uri=store.uri).omitted == {}  # no limit: every version, as before

    runner, uri = CliRunner(env={"COLUMNS": "200"}), ["--tracking-uri", store.uri]
    listed = runner.invoke(models_app, ["list", "busy", *uri])
    shown = [line.split()[1] for line in listed.output.splitlines() if line.startswith("busy ")]
    assert listed.exit_code == 0 and shown == [versions[1], *versions[4:]], listed.output
    assert "busy: 3 older version(s) not shown; --last N or --all shows them." in listed.output
    everything = runner.invoke(models_app, ["list", "busy", "--all", *uri]).output
    assert [line.split()[1] for line in everything.splitlines() if line.startswith("busy ")] == versions
    assert "not shown" not in everything

    moves = len(history("busy", tracking_uri=store.uri))
    hist = runner.invoke(models_app, ["history", "busy", "--last", "2", *uri]).output
    assert f"busy: {moves - 2} earlier move(s) not shown" in hist and "early champion" not in hist
    assert "early champion" in runner.invoke(models_app, ["history", "busy", "--all", *uri]).output
    assert f"{moves - HISTORY_LAST} earlier" in runner.invoke(models_app, ["history", "busy", *uri]).output


def test_models_list_flags_an_alias_moved_outside_cityagent_until_the_next_move_records_it(store):
    v1, v2, v3 = add_versions(store, "moved-aside", [3.0, 2.0, 1.0])
    runner, uri = CliRunner(env={"COLUMNS": "200"}), ["--tracking-uri", store.uri]
    for version in (v1, v3):
        promote("moved-aside", version, reason=f"v{version}", tracking_uri=store.uri)
    rollback("moved-aside", reason="v3 drifts", tracking_uri=store.uri)  # champion back on v1, recorded
    promote("moved-aside", v2, "challenger", reason="try", tracking_uri=store.uri)
    assert all(not r.unrecorded for r in list_versions("moved-aside", tracking_uri=store.uri))
    listed = runner.invoke(models_app, ["list", "moved-aside", *uri])
    assert listed.exit_code == 0 and "champion" in listed.output and "unrecorded" not in listed.output, listed.output

    store.client.set_registered_model_alias("moved-aside", "champion", v3)  # as MLflow's UI does: no history entry
    rows = {r.version: r for r in list_versions("moved-aside", tracking_uri=store.uri)}
    assert (rows[v3].aliases, rows[v3].unrecorded) == (["champion"], ["champion"])
    assert (rows[v2].aliases, rows[v2].unrecorded) == (["challenger"], [])  # moved by cityagent: not flagged
    listed = runner.invoke(models_app, ["list", "moved-aside", *uri])
    assert listed.exit_code == 0 and "champion (unrecorded)" in listed.output, listed.output
    assert "challenger (unrecorded)" not in listed.output
    note = " ".join(listed.output.split())
    assert f"moved-aside: champion (v{v3}) is not where the last recorded move put it" in note
    assert "`cityagent models history moved-aside`" in note and "next promote or rollback records it" in note

    promote("moved-aside", v2, reason="back to a recorded champion", tracking_uri=store.uri)  # records v3 first
    assert all(not r.unrecorded for r in list_versions("moved-aside", tracking_uri=store.uri))
    assert "unrecorded" not in runner.invoke(models_app, ["list", "moved-aside", *uri]).output


def test_export_command_fails_cleanly_on_an_unknown_run(store):
    app = Typer()
    app.command("export")(export_command)
    res = CliRunner().invoke(app, ["0123456789abcdef0123456789abcdef", "--tracking-uri", store.uri])
    assert res.exit_code == 2 and "no run" in res.output


def test_export_command_takes_the_short_run_id_that_models_list_shows(store, tmp_path):
    run_id = log_training_run(store.client, store.experiment_id, tiny_bundle("gru", task="short-id"), tmp_path)
    app = Typer()
    app.command("export")(export_command)
    res = CliRunner().invoke(app, [run_id[:8], "--no-register", "--tracking-uri", store.uri])
    assert res.exit_code == 0, res.output
    assert "onnx_parity_rel_diff" in store.client.get_run(run_id).data.metrics
    assert f"exports/{run_id}/model.onnx" in res.output.replace("\n", "")  # the local copy is filed by the full id
    none = CliRunner().invoke(app, ["abcdef12", "--tracking-uri", store.uri])
    assert none.exit_code == 2 and "no run id starts with 'abcdef12'" in none.output


def export_version(store, task: str, **meta) -> str:
    """A real exported version of ``task`` (a tiny GRU as ONNX) whose metadata is changed by ``meta``."""
    bundle = tiny_bundle("gru", task=task)
    bundle.meta |= meta
    run_id = log_training_run(store.client, store.experiment_id, bundle, store.root)
    return export_run(run_id, tracking_uri=store.uri, alias=None).version


def test_a_version_expecting_another_input_is_not_promoted_over_the_champion_unless_forced(store):
    same = {"nodes": [f"s{i}" for i in range(4)]}
    v1 = export_version(store, "traffic-contract")  # nodes s0..s3, the calendar features
    v2 = export_version(store, "traffic-contract", **same)  # the same input: promotes freely
    v3 = export_version(store, "traffic-contract", nodes=["s0", "s1", "s7", "s8"])  # two sensors replaced
    v4 = export_version(store, "traffic-contract", feature_names=["speed", "flow", *[f"c{i}" for i in range(7)]])
    assert promote("traffic-contract", v1, reason="first champion", tracking_uri=store.uri).from_version is None
    assert promote("traffic-contract", v2, reason="same input", tracking_uri=store.uri).to_version == v2

    before = snapshot(store)
    with pytest.raises(
        CityAgentError,
        match=r"v3 expects a different input than champion v2 \(nodes: "
        r"2 added \(s7, s8\), 2 removed \(s2, s3\)\).*--force",
    ):
        promote("traffic-contract", v3, reason="new sensors", tracking_uri=store.uri)
    with pytest.raises(CityAgentError, match=r"feature_names: 8 added \(flow, c0, c1, …\)"):
        promote("traffic-contract", v4, reason="new features", tracking_uri=store.uri)
    res = CliRunner().invoke(
        models_app, ["promote", "traffic-contract", v3, "--reason", "x", "--tracking-uri", store.uri]
    )
    assert res.exit_code == 2 and "expects a different input" in res.output
    assert snapshot(store) == before

    forced = ["promote", "traffic-contract", v3, "--reason", "clients moved", "--force", "--tracking-uri", store.uri]
    assert CliRunner().invoke(models_app, forced).exit_code == 0
    assert store.client.get_registered_model("traffic-contract").aliases == {"champion": int(v3)}
    before = snapshot(store)
    with pytest.raises(CityAgentError, match="v2 expects a different input than champion v3"):
        rollback("traffic-contract", reason="back", tracking_uri=store.uri)  # the rollback would break clients too
    assert snapshot(store) == before
    assert rollback("traffic-contract", reason="back", force=True, tracking_uri=store.uri).to_version == v2


def export_horizon_version(store, task: str, horizon: int) -> str:
    """A real exported tiny GRU of ``task`` forecasting ``horizon`` steps ahead (the input of export_version's)."""
    bundle = tiny_bundle("gru", task=task)
    params = {**bundle.build_params, "horizon": horizon}
    model = ScaledModel(build_model("gru", **params), X_SCALE, X_OFFSET, Y_SCALE, Y_OFFSET)
    bundle.build_params, bundle.state_dict = params, model.state_dict()
    bundle.meta |= {"horizon": horizon, "target_offsets": list(range(1, horizon + 1))}
    run_id = log_training_run(store.client, store.experiment_id, bundle, store.root)
    return export_run(run_id, tracking_uri=store.uri, alias=None).version


def test_a_version_answering_another_horizon_is_not_promoted_over_the_champion_unless_forced(store):
    """Servers refuse to hot-swap to it (their clients read [B, 1, N]), so the move is refused where it is made."""
    v1 = export_horizon_version(store, "risk-horizon", 1)
    v2 = export_horizon_version(store, "risk-horizon", 3)
    assert promote("risk-horizon", v1, reason="first champion", tracking_uri=store.uri).from_version is None
    before = snapshot(store)
    with pytest.raises(CityAgentError) as info:
        promote("risk-horizon", v2, reason="longer horizon", tracking_uri=store.uri)
    message = str(info.value)
    assert message.startswith(f"risk-horizon v{v2} answers a different output than champion v{v1} (horizon 3 instead")
    assert "target_offsets [1, 2, 3] instead of [1]" in message
    assert "output_shape [-1, 3, 4] instead of [-1, 1, 4]" in message
    assert "--force" in message and "\n" not in message
    res = CliRunner().invoke(models_app, ["promote", "risk-horizon", v2, "--reason", "x", "--tracking-uri", store.uri])
    assert res.exit_code == 2 and "answers a different output" in res.output
    assert snapshot(store) == before
    assert promote("risk-horizon", v2, reason="clients moved", force=True, tracking_uri=store.uri).to_version == v2
    with pytest.raises(CityAgentError, match=f"v{v1} answers a different output than champion v{v2}"):
        rollback("risk-horizon", reason="back", tracking_uri=store.uri)
    assert rollback("risk-horizon", reason="back", force=True, tracking_uri=store.uri).to_version == v1


def test_output_differences_name_what_changed():
    old = {"horizon": 1, "target_offsets": [1], "quantiles": None, "output_names": ["y"], "output_shape": [-1, 1, 9]}
    new = old | {"horizon": 3, "target_offsets": [1, 2, 3], "output_shape": [-1, 3, 9]}
    assert output_differences(new, old) == [
        "horizon 3 instead of 1",
        "target_offsets [1, 2, 3] instead of [1]",
        "output_shape [-1, 3, 9] instead of [-1, 1, 9]",
    ]
    assert output_differences(old | {"quantiles": [0.1, 0.9]}, old) == ["quantiles [0.1, 0.9] instead of None"]
    assert output_differences(old, old) == [] and output_differences({"horizon": 3}, {"step": "1h"}) == []


def test_input_differences_name_what_changed():
    old = {"nodes": [f"s{i}" for i in range(16)], "input_len": 12, "step": "5min", "feature_names": ["speed"]}
    grown = old | {"nodes": [f"s{i}" for i in range(64)], "input_len": 6}
    want = ["nodes 64 instead of 16: 48 added (s16, s17, s18, …)", "input_len 6 instead of 12"]
    assert input_differences(grown, old) == want
    assert input_differences(old | {"nodes": old["nodes"][::-1]}, old) == ["nodes: the same entries in another order"]
    assert input_differences(old, old) == [] and input_differences({"nodes": ["a"]}, {"step": "1h"}) == []
    # a window of the same length over other steps (e.g. the same slot on past days) or another input tensor shape:
    # serving's hot swap refuses both, so the gate and promote must too
    daily = old | {"input_offsets": [-2016, -1008, 0]}
    assert input_differences(daily, old | {"input_offsets": [-2, -1, 0]}) == [
        "input_offsets [-2016, -1008, 0] instead of [-2, -1, 0]"
    ]
    shaped = old | {"input_shape": [-1, 12, 16, 3]}
    assert input_differences(shaped, old | {"input_shape": [-1, 12, 16, 1]}) == [
        "input_shape [-1, 12, 16, 3] instead of [-1, 12, 16, 1]"
    ]


def test_the_version_tables_keep_names_aliases_dates_and_metrics_whole_at_80_columns():
    metrics = {"test_mae": 2.34567, "test_rmse": 3.1234, "test_mape": 0.123456, "test_coverage_90": 0.9012}
    created = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    rows = [
        VersionRow("traffic-synthetic", "13", ["challenger", "champion"], metrics, created, "0123456789abcdef"),
        VersionRow("demand-synthetic", "2", [], {}, created, None),
    ]
    console = Console(width=80, record=True)
    console.print(versions_table(rows))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for word in ("traffic-synthetic", "demand-synthetic", "challenger", "champion", "2026-12-01", "10:30"):
        assert word in text
    assert all(w in text for w in ("mae=2.346", "rmse=3.123", "mape=0.1235", "coverage_90=0.9012", "01234567"))

    reason = "gate on the newest 2048 test windows: p50 latency 0.1 ms within 50 ms; no champion yet"
    moves = [
        Move(1, "2026-12-01T10:30:00+00:00", "cityagent-retrain", "promote", "champion", None, "1", reason, metrics),
        Move(2, "2026-12-02T08:05:09+00:00", "alice", "rollback", "challenger", "12", "13", "drifts", {"mae": 2.3}),
        Move(3, "2026-12-03T03:00:00+00:00", "cityagent-retrain", "refuse", "champion", "1", "14", "worse", {}),
    ]
    console = Console(width=80, record=True)
    console.print(history_table(moves))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for word in ("2026-12-01", "10:30:00", "2026-12-02", "08:05:09", "cityagent-retrain", "champion", "challenger"):
        assert word in text
    assert all(w in text for w in ("v- → v1", "v12 → v13", "test_mae=2.346", "test_coverage_90=0.9012", "mae=2.3"))
    assert "no champion yet" in text and "rollback" in text
    assert "v14 refused" in text and "(champion v1 stays)" in " ".join(text.split()) and "v1 → v14" not in text


def test_export_command_refuses_a_negative_or_infinite_tolerance(store):
    app = Typer()
    app.command("export")(export_command)
    for tolerance in ("-1", "inf", "nan"):
        args = ["0123456789abcdef0123456789abcdef", "--tolerance", tolerance, "--no-register"]
        res = CliRunner().invoke(app, [*args, "--tracking-uri", store.uri])
        assert res.exit_code == 2 and "--tolerance" in res.output and "≥ 0" in res.output, res.output
        assert "no run" not in res.output  # refused before MLflow is asked anything
    assert issubclass(ConfigError, CityAgentError)


def onnx_file_of(store, name: str, version: str) -> Path:
    """The model.onnx a version's artifacts hold in the test store's (local) artifact folder."""
    source = Path(store.client.get_model_version_download_uri(name, version).removeprefix("file://"))
    found = sorted(source.rglob("*.onnx"))
    assert len(found) == 1, (source, found)
    return found[0]


def test_a_version_whose_onnx_file_is_corrupt_is_not_promoted_or_rolled_back_to_unless_forced(store):
    task = "traffic-corrupt"
    v1, v2, v3 = (export_version(store, task) for _ in range(3))
    run_of_v2 = store.client.get_model_version(task, v2).run_id
    onnx_file = onnx_file_of(store, task, v2)
    onnx_file.write_bytes(onnx_file.read_bytes()[: onnx_file.stat().st_size // 2])  # truncated

    before = snapshot(store)
    for holder in (None, v1):  # the first champion, and a move off a sound one
        if holder:
            promote(task, v1, reason="sound", tracking_uri=store.uri)
            before = snapshot(store)
        with pytest.raises(CityAgentError) as err:
            promote(task, v2, reason="new", tracking_uri=store.uri)
        msg = str(err.value)
        assert f"{task} v{v2} is not a loadable ONNX model" in msg and "model.onnx" in msg, msg
        assert f"cityagent export {run_of_v2}" in msg and "--force" in msg and "\n" not in msg, msg
        assert snapshot(store) == before
    res = CliRunner().invoke(models_app, ["promote", task, v2, "--reason", "x", "--tracking-uri", store.uri])
    assert res.exit_code == 2 and "not a loadable ONNX model" in res.output, res.output
    assert snapshot(store) == before

    # the corrupt version as champion (forced): moving off it is allowed, rolling back onto it is not
    assert "ONNX Runtime cannot open its file" in msg and "/tmp/tmp" not in msg.replace(str(store.root), "")
    assert promote(task, v2, reason="forced", force=True, tracking_uri=store.uri).to_version == v2
    assert promote(task, v3, reason="fix", tracking_uri=store.uri).from_version == v2
    before = snapshot(store)
    with pytest.raises(CityAgentError, match=rf"{task} v{v2} is not a loadable ONNX model"):
        rollback(task, reason="back", tracking_uri=store.uri)
    assert snapshot(store) == before
    assert rollback(task, reason="back", force=True, tracking_uri=store.uri).to_version == v2


def test_versions_registered_by_hand_without_onnx_or_metadata_are_still_promoted(store):
    v1, v2 = add_versions(store, "hand-made", [3.0, 2.0])  # no artifacts at all
    assert promote("hand-made", v1, reason="first", tracking_uri=store.uri).to_version == v1
    assert promote("hand-made", v2, reason="better", tracking_uri=store.uri).to_version == v2


def test_an_alias_moved_without_its_history_entry_is_shown_and_recorded_by_the_next_move(store, monkeypatch):
    """A promote killed between setting the alias and writing its entry (SIGKILL, a power loss) left a move that
    `models history` did not show; it is shown as `unrecorded`, and the next move records it before its own."""
    v1, v2, v3 = add_versions(store, "cut-short", [3.0, 2.0, 1.0])
    promote("cut-short", v1, reason="first", tracking_uri=store.uri)
    promote("cut-short", v2, reason="second", tracking_uri=store.uri)

    def killed(*args, **kwargs):
        raise SystemExit(137)  # no put-back runs, as with SIGKILL

    with monkeypatch.context() as mp:
        mp.setattr(aliases_mod, "append_move", killed)
        with pytest.raises(SystemExit):
            promote("cut-short", v3, reason="third", tracking_uri=store.uri)
    assert store.client.get_registered_model("cut-short").aliases == {"champion": int(v3)}
    before = snapshot(store)

    moves = history("cut-short", tracking_uri=store.uri)
    assert [(m.seq, m.action, m.from_version, m.to_version) for m in moves] == [
        (1, "promote", None, v1),
        (2, "promote", v1, v2),
        (3, "unrecorded", v2, v3),
    ]
    assert "champion found on v3 where the last recorded move put v2: a move cut short" in moves[-1].reason
    res = CliRunner(env={"COLUMNS": "200"}).invoke(models_app, ["history", "cut-short", "--tracking-uri", store.uri])
    assert res.exit_code == 0 and "unrecorded" in res.output and f"v{v2} → v{v3}" in res.output, res.output
    assert snapshot(store) == before  # reading wrote nothing

    back = rollback("cut-short", reason="v3 was never meant", tracking_uri=store.uri)
    assert (back.from_version, back.to_version, back.seq) == (v3, v2, 4)
    moves = history("cut-short", tracking_uri=store.uri)
    assert [(m.seq, m.action, m.to_version) for m in moves][2:] == [(3, "unrecorded", v3), (4, "rollback", v2)]
    assert sum(k.startswith(TAG_PREFIX) for k in store.client.get_registered_model("cut-short").tags) == 4
