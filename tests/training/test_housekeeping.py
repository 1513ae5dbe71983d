"""What training leaves on disk stays bounded: old Ray session folders are pruned, never a live one, and a
finished run's checkpoints can be dropped without touching another run's."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cityagent.errors import ConfigError
from cityagent.home import home_dir
from cityagent.training.housekeeping import KEEP_DEFAULT, KEEP_ENV, drop_training_files, keep_sessions, prune_sessions


def session(root: Path, day: int, age_s: float = 86400.0) -> Path:
    folder = root / f"session_2026-03-{day:02d}_03-00-00_000000_{1000 + day}"
    (folder / "logs").mkdir(parents=True)
    (folder / "logs" / "raylet.out").write_text("log\n")
    os.utime(folder, (time.time() - age_s,) * 2)
    return folder


def test_old_sessions_go_but_not_a_running_one_the_latest_or_one_just_made(tmp_path):
    sessions = [session(tmp_path, d) for d in range(1, 6)] + [session(tmp_path, 6, age_s=5)]
    (tmp_path / "session_latest").symlink_to(sessions[2])
    (tmp_path / "ray_current_cluster").write_text("127.0.0.1:6380\n")  # Ray's other files are not sessions
    # a process running from day 2's folder, as a Ray's gcs_server and raylet name it on their command line (and
    # from another folder whose name merely starts with day 4's)
    args = [f"--log_dir={sessions[1]}/logs", f"--other={sessions[3]}0/logs"]
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *args])
    try:
        gone = prune_sessions(tmp_path, keep=2)
        assert gone == [sessions[0], sessions[3]]  # days 1 and 4; 2 runs, 3 is latest, 5 and 6 are the newest two
        assert prune_sessions(tmp_path, keep=0) == [sessions[4]]  # 6 was made seconds ago: its Ray may be starting
    finally:
        live.kill()
        live.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [sessions[1].name, sessions[2].name, sessions[5].name, "session_latest", "ray_current_cluster"]
    )
    assert prune_sessions(tmp_path, keep=None) == [] and prune_sessions(tmp_path / "none", keep=0) == []


@pytest.mark.parametrize(("raw", "want"), [(None, KEEP_DEFAULT), ("", KEEP_DEFAULT), ("5", 5), ("0", 0), ("All", None)])
def test_how_many_sessions_to_keep(raw, want, monkeypatch):
    if raw is None:
        monkeypatch.delenv(KEEP_ENV, raising=False)
    else:
        monkeypatch.setenv(KEEP_ENV, raw)
    assert keep_sessions() == want


@pytest.mark.parametrize("raw", ["-1", "ten", "2.5"])
def test_a_bad_number_of_sessions_names_the_variable(raw, monkeypatch):
    monkeypatch.setenv(KEEP_ENV, raw)
    with pytest.raises(ConfigError, match=rf"{KEEP_ENV}='{raw}': give a whole number"):
        keep_sessions()


def test_a_runs_training_files_go_and_nothing_else(tmp_path):
    run_id, other = "a1b2c3d4e5f6a7b8c9d0", "ffffeeeeddddccccbbbb"
    home = home_dir()
    results, epochs = home / "ray" / "results", home / "ray" / "epochs"
    mine = results / f"stid-{run_id[:12]}"
    theirs = results / f"stid-{other[:12]}"
    exports = home / "exports"
    for folder in (mine / "checkpoint_1", theirs / "checkpoint_1", home / "checkpoints" / other):
        folder.mkdir(parents=True)
        (folder / "checkpoint.ckpt").write_bytes(b"weights")
    for run in (run_id, other):
        (exports / run).mkdir(parents=True)
        (exports / run / "model.onnx").write_bytes(b"onnx")
    epochs.mkdir(parents=True)
    for name in (mine.name, theirs.name):
        (epochs / f"{name}.jsonl").write_text("{}\n")

    mine_files = [exports / run_id, mine, epochs / f"{mine.name}.jsonl"]
    assert drop_training_files(run_id, {"ray_run": str(mine)}) == mine_files
    assert theirs.is_dir() and (epochs / f"{theirs.name}.jsonl").is_file() and (home / "checkpoints" / other).is_dir()
    assert (exports / other / "model.onnx").is_file()
    # a folder that does not name the run, or lies outside the checkpoint storage, or remote storage: left alone
    assert drop_training_files(run_id, {"ray_run": str(theirs)}) == []
    outside = {"ray_run": str(tmp_path / f"x-{other[:12]}")}
    assert drop_training_files(other, outside) == [home / "checkpoints" / other, exports / other]
    assert drop_training_files(other, {"ray_run": f"s3://bucket/ray/stid-{other[:12]}"}) == []
    assert theirs.is_dir()


def test_a_bad_number_of_sessions_is_refused_before_a_ray_run_opens(tiny_cfg, monkeypatch):
    from mlflow import MlflowClient

    from cityagent.training.fit import fit
    from cityagent.training.tracking import tracking_uri

    monkeypatch.setenv(KEEP_ENV, "twenty")
    with pytest.raises(ConfigError, match=KEEP_ENV):
        fit(tiny_cfg(**{"train.workers": 2}))
    client = MlflowClient(tracking_uri())
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []  # no FAILED run left
    assert fit(tiny_cfg(**{"train.max_epochs": 1})).metrics  # an in-process run starts no Ray: not asked


def test_a_session_another_run_pruned_first_is_no_error(tmp_path, monkeypatch, caplog):
    import shutil

    from cityagent.training import housekeeping

    first, second = session(tmp_path, 1), session(tmp_path, 2)
    real = shutil.rmtree

    def raced(path, *args, **kwargs):
        real(path)
        if Path(path) == first:  # another run's prune got there as this one walked the folder
            raise FileNotFoundError(2, "No such file or directory", str(path / "logs"))

    monkeypatch.setattr(housekeeping.shutil, "rmtree", raced)
    assert prune_sessions(tmp_path, keep=0) == [second]
    assert not first.exists() and "could not delete" not in caplog.text


@pytest.mark.slow
@pytest.mark.ray
def test_the_retrain_disk_benchmark_keeps_the_home_bounded(capsys):
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "retrain_disk.py"
    spec = importlib.util.spec_from_file_location("retrain_disk_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--retrains", "3", "--keep", "1"]) == 0
    out = capsys.readouterr().out
    assert "sessions kept: 2; checkpoints and exports left by judged retrains: 0 bytes" in out
