"""Ray Train: a 2-worker run, a real two-node cluster, a worker killed mid-run, and unreachable addresses.

Kept tiny (6 nodes, 2 epochs, GRU of 8 units) so the three Ray runs fit in CI on 2 cores; run them one at a time.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import psutil
import pytest
import ray
import ray.cloudpickle
from mlflow import MlflowClient

from cityagent.errors import CityAgentError
from cityagent.training.fit import fit
from cityagent.training.tracking import tracking_uri
from tests.mlflow_servers import free_port

pytestmark = pytest.mark.usefixtures("shared_mlflow_store")
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import the tests package


class KillOnce(pl.Callback):
    """SIGKILL this worker during ``epoch`` on ``rank``, once (a marker file remembers).

    It dies a few seconds into the epoch, as a crash mid-epoch would: a worker killed the instant after
    ``ray.train.report`` can take that report with it, and the run then restarts from the checkpoint before.
    """

    def __init__(self, marker: str, rank: int = 1, epoch: int = 1, delay_s: float = 4.0):
        self.marker, self.rank, self.epoch, self.delay_s = marker, rank, epoch, delay_s

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank == self.rank and trainer.current_epoch == self.epoch and not os.path.exists(self.marker):
            time.sleep(self.delay_s)
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture
def ray_cfg(tiny_cfg):
    def make(**overrides):
        return tiny_cfg(**{"train.workers": 2, "train.max_failures": 0, **overrides})

    yield make
    if ray.is_initialized():  # fit stops the Ray it started; this only cleans up after a failed assertion
        ray.shutdown()


@pytest.mark.ray
def test_two_worker_ray_run_is_tracked_from_the_driver(ray_cfg, monkeypatch):
    from cityagent.training.housekeeping import KEEP_ENV, drop_training_files
    from cityagent.training.ray_cluster import ray_temp_dir

    earlier = [ray_temp_dir() / f"session_2026-01-0{i}_03-00-00_000000_{40 + i}" for i in range(1, 4)]
    for folder in earlier:  # sessions of earlier retrains, left by Ray
        (folder / "logs").mkdir(parents=True)
        os.utime(folder, (time.time() - 86400,) * 2)
    monkeypatch.setenv(KEEP_ENV, "1")
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")  # Ray's processes inherit it: their logs say what they import
    t0 = time.perf_counter()
    result = fit(ray_cfg())
    assert result.info["mode"] == "ray" and result.info["workers"] == 2
    assert not ray.is_initialized()  # the local Ray it started is gone
    client = MlflowClient(tracking_uri())
    history = client.get_metric_history(result.run_id, "val_loss")
    assert [m.step for m in history] == [0, 1]  # one row per epoch (rank 0), not one per worker
    assert len(client.search_runs([client.get_run(result.run_id).info.experiment_id])) >= 1
    assert "ray/results" in result.checkpoint and Path(result.checkpoint).is_dir()
    assert result.bundle_path.endswith("bundle/model.pt") and "test_mae" in result.metrics
    print(f"2-worker Ray fit: {time.perf_counter() - t0:.1f} s")

    sessions = sorted(p.name for p in ray_temp_dir().glob("session_2*"))
    assert len(sessions) == 2 and sessions[0] == earlier[-1].name  # the newest earlier one, and this run's
    # the controller and the stop flag never load Lightning: seconds before the workers start, on every run
    controller, flag = (_imports_of(ray_temp_dir() / sessions[1], a) for a in ("TrainController", "StopFlag"))
    assert "lightning" not in controller, "the controller unpickled a train_loop_config value that needs Lightning"
    assert "torch" not in flag, "the StopFlag actor's module imports torch"
    run_folder = Path(result.info["ray_run"])
    epochs = run_folder.parents[1] / "epochs" / f"{run_folder.name}.jsonl"
    assert Path(result.checkpoint).is_relative_to(run_folder) and epochs.is_file()
    assert drop_training_files(result.run_id, result.info) == [run_folder, epochs]  # what a retrain does after
    assert not run_folder.exists() and not epochs.exists()


def _imports_of(session: Path, actor: str) -> set[str]:
    """The modules the process of Ray actor ``actor`` imported, from its log under PYTHONPROFILEIMPORTTIME."""
    logs = [p for p in (session / "logs").glob("worker-*.err") if f":actor_name:{actor}\n" in p.read_text()]
    assert len(logs) == 1, f"{len(logs)} logs of a {actor} actor in {session}"
    return {ln.rsplit("|", 1)[1].strip() for ln in logs[0].read_text().splitlines() if ln.startswith("import time:")}


@pytest.mark.ray
def test_killed_worker_resumes_from_its_checkpoint(ray_cfg, tmp_path):
    marker = tmp_path / "killed"
    t0 = time.perf_counter()
    result = fit(ray_cfg(**{"train.max_failures": 2}), callbacks=[KillOnce(str(marker))])
    assert marker.is_file()  # rank 1 really died at epoch 1
    assert result.info["resumed_from_epoch"] == 0  # the group restarted from epoch 0's checkpoint
    assert [int(r["epoch"]) for r in result.history] == [0, 1]
    assert MlflowClient(tracking_uri()).get_run(result.run_id).info.status == "FINISHED"
    print(f"worker-kill Ray fit: {time.perf_counter() - t0:.1f} s")


class Slow(pl.Callback):
    """Each epoch takes a second longer, so the driver's look at the epochs comes while the run still trains."""

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        time.sleep(1.0)


@pytest.mark.slow  # a 2-worker Ray run of several epochs (about 40 s)
@pytest.mark.ray
def test_a_tracking_server_lost_mid_run_stops_the_workers_after_their_epoch(ray_cfg):
    """Epochs are logged while a Ray run trains; one that cannot be logged stops the run then, not at its end."""
    from cityagent.home import home_dir
    from cityagent.training.ray_job import train_ray
    from cityagent.training.task import load_task
    from cityagent.training.tracked_run import TrackingUnreachable

    cfg = ray_cfg(**{"train.max_epochs": 30, "train.patience": 30})
    task, _ = load_task(cfg.task)
    seen: list[int] = []

    def on_epoch(row: dict) -> None:
        seen.append(int(row["epoch"]))
        if len(seen) == 2:
            raise TrackingUnreachable("MLflow tracking server http://gone not reachable", "http://gone", "refused")

    with pytest.raises(TrackingUnreachable, match="http://gone"):
        train_ray(task, cfg, name="lost-tracking", callbacks=[Slow()], on_epoch=on_epoch)
    epochs = len((home_dir() / "ray" / "epochs" / "lost-tracking.jsonl").read_text().splitlines())
    assert seen == [0, 1] and epochs < 10  # stopped within a few epochs of the loss, not after all 30
    assert not ray.is_initialized()


def _own_ray_processes(temp_dirs: list[Path]) -> list[psutil.Process]:
    """Processes of the test cluster only: their command lines name its private temp dirs."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if any(str(d) in cmd for d in temp_dirs):
            out.append(p)
    return out


def _stop_cluster(temp_dirs: list[Path]) -> None:
    """Stop the processes this test started, by pid (``ray stop`` would also stop other people's Ray)."""
    procs = _own_ray_processes(temp_dirs)
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=10)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    for d in temp_dirs:
        shutil.rmtree(d, ignore_errors=True)


CHECK = "from cityagent.training.ray_cluster import check_reachable"
DRIVER = """
import json, sys
from cityagent.training.config import RunConfig
from cityagent.training.fit import fit
r = fit(RunConfig.model_validate_json(sys.argv[1]))
print(json.dumps({"run_id": r.run_id, "info": r.info, "metrics": r.metrics}))
"""


@pytest.mark.ray
def test_two_node_cluster(ray_cfg):
    """A head and a worker node started with the `ray` CLI; the driver connects with train.address."""
    cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if cli is None:
        pytest.skip("the `ray` command-line tool is not installed")
    port = free_port()  # never 6379: Redis holds it on these machines
    # short private temp dirs: Ray's unix sockets live below them, and they identify this cluster's processes
    dirs = [Path(tempfile.mkdtemp(prefix="rh", dir="/tmp")), Path(tempfile.mkdtemp(prefix="rw", dir="/tmp"))]
    # Ray 2.60 clusters use token auth (token in ~/.ray/auth_token); a driver naming an explicit address must be
    # started with RAY_AUTH_MODE=token, so the driver runs in its own process with that environment
    env = os.environ | {"RAY_AUTH_MODE": "token"}
    cfg = ray_cfg(**{"train.address": f"127.0.0.1:{port}"})
    t0 = time.perf_counter()
    try:
        for args in (
            ["--head", "--port", str(port), "--include-dashboard", "false"],
            ["--address", f"127.0.0.1:{port}"],
        ):
            temp = dirs[0] if "--head" in args else dirs[1]
            started = subprocess.run(
                [cli, "start", *args, "--num-cpus", "1", "--temp-dir", str(temp), "--disable-usage-stats"],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
            )
            assert started.returncode == 0, f"ray start {' '.join(args)} failed:\n{started.stderr[-3000:]}"
        no_token = subprocess.run(  # without RAY_AUTH_MODE=token: refused at once, and the error names the fix
            [sys.executable, "-c", f"{CHECK}; check_reachable('127.0.0.1:{port}')"],
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in env.items() if k != "RAY_AUTH_MODE"},
        )
        assert "InvalidAuthToken" in no_token.stderr and "set RAY_AUTH_MODE=token" in no_token.stderr
        driver = subprocess.run(
            [sys.executable, "-c", DRIVER, cfg.model_dump_json()], capture_output=True, text=True, timeout=300, env=env
        )
        assert driver.returncode == 0, driver.stderr[-3000:]
        assert "runs without its dashboard" in driver.stderr  # Tune trials would leave their cleaners behind
    finally:
        _stop_cluster(dirs)
    assert not _own_ray_processes(dirs)
    out = json.loads(driver.stdout.strip().splitlines()[-1])
    assert out["info"]["mode"] == "ray" and out["info"]["workers"] == 2 and "test_mae" in out["metrics"]
    assert MlflowClient(tracking_uri()).get_run(out["run_id"]).info.status == "FINISHED"
    print(f"two-node Ray fit incl. cluster start/stop: {time.perf_counter() - t0:.1f} s")


def test_unreachable_ray_address_fails_fast_naming_it(tiny_cfg):
    port = free_port()
    t0 = time.perf_counter()
    with pytest.raises(CityAgentError, match=rf"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        fit(tiny_cfg(**{"train.workers": 2, "train.address": f"127.0.0.1:{port}"}))
    assert time.perf_counter() - t0 < 10 and not ray.is_initialized()


def test_ray_address_env_is_used_when_config_has_none(tiny_cfg, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    with pytest.raises(CityAgentError, match=r"127\.0\.0\.1:1\b"):
        fit(tiny_cfg(**{"train.workers": 2}))
