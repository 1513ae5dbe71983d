"""A registered model.onnx corrupted or replaced in the artifact store: promote refuses it (its SHA-256 differs from
the ``cityagent.onnx_sha256`` tag export recorded), and re-exporting its run, the advice given, registers a new
version rather than answering with the broken one."""

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from cityagent.agent.cli_models import models_app
from cityagent.errors import CityAgentError
from cityagent.training.export import DIGEST_TAG, export_run
from cityagent.training.registry import list_versions, promote
from tests.training.export_factories import log_training_run, sqlite_store, tiny_bundle


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with sqlite_store(tmp_path_factory.mktemp("mlflow")) as s:
        yield s


def snapshot(store):
    models = {m.name: (dict(m.aliases), dict(m.tags)) for m in store.client.search_registered_models()}
    return list_versions(tracking_uri=store.uri), models


def exported(store, task: str, seed: int = 0, alias: str | None = None) -> tuple[str, str]:
    """(version, run id) of a real exported tiny GRU of ``task``."""
    run_id = log_training_run(store.client, store.experiment_id, tiny_bundle("gru", task=task, seed=seed), store.root)
    return export_run(run_id, tracking_uri=store.uri, alias=alias).version, run_id


def stored_onnx(store, name: str, version: str) -> Path:
    source = Path(store.client.get_model_version_download_uri(name, version).removeprefix("file://"))
    [path] = source.rglob("*.onnx")
    return path


def corrupt(path: Path) -> None:
    """One weight made huge, as a flipped exponent bit does: the file still loads, its metadata still reads."""
    model = onnx.load(str(path))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    weights = numpy_helper.to_array(init).copy()
    weights.flat[0] = 1e30
    init.CopyFrom(numpy_helper.from_array(weights, init.name))
    onnx.save(model, str(path))


def test_promote_refuses_a_version_whose_stored_file_is_not_the_exported_one_unless_forced(store):
    task = "traffic-digest"
    v1, _ = exported(store, task)
    v2, run2 = exported(store, task, seed=1)
    promote(task, v1, reason="first", tracking_uri=store.uri)
    corrupt(stored_onnx(store, task, v2))
    before = snapshot(store)
    with pytest.raises(CityAgentError) as err:
        promote(task, v2, reason="better", tracking_uri=store.uri)
    msg = str(err.value)
    assert msg.startswith(f"{task} v{v2}: ") and "model.onnx does not match the SHA-256 recorded at export" in msg
    assert f"re-register it: cityagent export {run2}" in msg and "--force" in msg and "\n" not in msg, msg
    res = CliRunner().invoke(models_app, ["promote", task, v2, "--reason", "x", "--tracking-uri", store.uri])
    assert res.exit_code == 2 and "does not match the SHA-256 recorded at export" in res.output, res.output
    assert snapshot(store) == before
    assert promote(task, v2, reason="forced", force=True, tracking_uri=store.uri).to_version == v2


def test_a_version_without_the_digest_tag_is_promoted_as_before(store):
    task = "traffic-untagged"
    v1, _ = exported(store, task)
    store.client.delete_model_version_tag(task, v1, DIGEST_TAG)  # as an older cityagent registered it
    corrupt(stored_onnx(store, task, v1))  # nothing to compare it with
    assert promote(task, v1, reason="first", tracking_uri=store.uri).to_version == v1


@pytest.mark.parametrize(
    "how, damage, why",
    [
        ("corrupted", corrupt, "does not match the SHA-256 recorded at export"),
        ("truncated", lambda p: p.write_bytes(p.read_bytes()[:2000]), "does not match the SHA-256 recorded at export"),
        ("deleted", Path.unlink, "cannot be read"),
    ],
    ids=["corrupted", "truncated", "deleted"],
)
def test_re_exporting_a_run_whose_stored_file_is_damaged_registers_a_new_version(store, caplog, how, damage, why):
    task = f"traffic-reexport-{how}"
    v1, run_id = exported(store, task, alias="challenger")
    damage(stored_onnx(store, task, v1))
    with caplog.at_level(logging.WARNING, logger="cityagent.training.export"):
        again = export_run(run_id, tracking_uri=store.uri)  # the advice promote and serving give
    assert (again.version, again.already_registered) == ("2", False)  # it answered "already registered as v1"
    assert (again.damaged, again.differs_from) == (("1",), ())
    assert f"{task} v1 (run {run_id}): its stored model.onnx {why}" in caplog.text, caplog.text
    assert "so this export is registered as v2" in caplog.text
    assert str(store.client.get_model_version_by_alias(task, "challenger").version) == "2"  # not the broken v1
    assert promote(task, "2", reason="sound again", tracking_uri=store.uri).to_version == "2"
    assert export_run(run_id, tracking_uri=store.uri).already_registered  # v2 is sound: no v3
