"""Fast refusals before a Ray run: a port where something else listens, and a cluster too small for the run."""

import logging
import socket
import threading
import time

import pytest
import ray

from cityagent.errors import CityAgentError
from cityagent.training.fit import fit
from cityagent.training.ray_cluster import check_capacity, check_reachable, connect
from tests.serving.conftest import wait_until


@pytest.fixture
def not_ray():
    """A TCP server that answers every connection with a line of text, as Redis or MQTT would."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"-ERR unknown command\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_a_port_where_something_else_listens_fails_fast_naming_it(tiny_cfg, not_ray):
    t0 = time.perf_counter()
    with pytest.raises(CityAgentError, match=rf"{not_ray} answers but is not a Ray cluster \(GCS\)"):
        fit(tiny_cfg(**{"train.workers": 2, "train.address": not_ray}))
    assert time.perf_counter() - t0 < 15 and not ray.is_initialized()
    with pytest.raises(CityAgentError, match=r"is not a Ray client server \(ray://\)"):
        check_reachable(f"ray://{not_ray}")


@pytest.mark.ray
def test_a_cluster_with_too_few_cpus_is_refused_or_noted(monkeypatch, caplog):
    from ray._private.state import state

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        fix = r"needs 4 CPUs .* has 1 \(and cannot autoscale\); use train\.workers=1 \(--workers 1\)"
        with pytest.raises(CityAgentError, match=fix):
            check_capacity("head:6380", 4, cpus_per_worker=1)
        with pytest.raises(CityAgentError, match=r"needs 2 CPUs .* has 1 \(and cannot autoscale\)"):
            connect(None, 2, cpus_per_worker=1)  # a notebook's own ray.init(): it used to wait for ever
        with pytest.raises(
            CityAgentError, match=r"has 1 \(at most 2 with autoscaling\); use train.cpus_per_worker ≤ 1 or add nodes"
        ):
            monkeypatch.setattr(state, "get_max_resources_from_cluster_config", lambda: {"CPU": 2})
            check_capacity("head:6380", 4, cpus_per_worker=2)
        monkeypatch.setattr(state, "get_max_resources_from_cluster_config", lambda: {"CPU": 16})
        with caplog.at_level(logging.WARNING, logger="cityagent.training.ray_cluster"):
            check_capacity("head:6380", 4, cpus_per_worker=1)  # an autoscaler can add the CPUs: wait, said so
        assert "waiting for its autoscaler" in caplog.text
        check_capacity("head:6380", 1, cpus_per_worker=1)
        monkeypatch.setattr(state, "get_max_resources_from_cluster_config", lambda: None)
        with pytest.raises(
            CityAgentError,
            match=r"needs 2 GPUs \(train.accelerator=gpu: one per worker\) .* has 0 \(and cannot autoscale\); use "
            "train.accelerator=cpu",
        ):
            check_capacity("head:6380", 1, cpus_per_worker=1, num_gpus=2)
    finally:
        ray.shutdown()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("workers", [0, 2])
def test_gpu_runs_on_a_machine_without_one_are_refused_not_left_waiting(tiny_cfg, workers):
    t0 = time.perf_counter()
    need = max(workers, 1)
    with pytest.raises(CityAgentError, match=rf"needs {need} GPU\(s\) \(one per worker\), but torch sees 0 on this"):
        fit(tiny_cfg(**{"train.workers": workers, "train.accelerator": "gpu"}))
    assert time.perf_counter() - t0 < 30 and not ray.is_initialized()


def test_a_cluster_of_several_machines_without_shared_storage_is_warned_about(monkeypatch, caplog):
    from cityagent.training.ray_cluster import STORAGE_ENV, note_local_storage

    nodes = [{"Alive": True, "NodeManagerAddress": ip} for ip in ("10.0.0.1", "10.0.0.2")]
    monkeypatch.setattr(ray, "nodes", lambda: nodes)
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    with caplog.at_level(logging.WARNING, logger="cityagent.training.ray_cluster"):
        note_local_storage("10.0.0.1:6380")
    assert "spans 2 machines but checkpoints go to" in caplog.text and STORAGE_ENV in caplog.text
    caplog.clear()
    monkeypatch.setenv(STORAGE_ENV, "s3://city-models/ray")
    with caplog.at_level(logging.WARNING, logger="cityagent.training.ray_cluster"):
        note_local_storage("10.0.0.1:6380")
        monkeypatch.setattr(ray, "nodes", lambda: nodes[:1])
        monkeypatch.delenv(STORAGE_ENV)
        note_local_storage("10.0.0.1:6380")  # one machine: its own disk is every node's
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("cityagent")]


@pytest.mark.ray
def test_a_placement_waiting_for_cpus_is_said_and_so_is_its_end():
    """The watch a Ray run keeps, on a worker group's placement group that waits while another job holds a CPU:
    one line says what it waits for and what the cluster has free, one when it is placed (the whole run: below)."""
    from ray.util import placement_group, remove_placement_group

    from cityagent.training.ray_wait import PlacementWatch

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # 2 CPUs on any machine
    said: list[str] = []
    try:
        hog = ray.remote(num_cpus=1)(Hog).remote()
        ray.get(hog.ready.remote())
        group = placement_group([{"CPU": 1}] * 2)  # as Ray Train asks for 2 workers of 1 CPU
        watch = PlacementWatch(ray.get_runtime_context().get_job_id(), said.append, every_s=0.2, note_after_s=1.0)
        watch.start()
        try:
            wait_until(lambda: said)  # the wait is said
            ray.kill(hog)
            assert group.wait(timeout_seconds=30)
            wait_until(lambda: len(said) == 2)  # and then the placement
        finally:
            watch.stop()
            remove_placement_group(group)
    finally:
        ray.shutdown()
    assert "waited" in said[0] and "2 worker(s) × {1 CPU}" in said[0], said
    assert "1 of 2 CPUs free on 1 live node(s): other jobs hold them" in said[0], said
    assert "workers are placed after" in said[1], said


@pytest.mark.slow  # a whole 2-worker Ray run (about a minute); the watch itself is checked above in seconds
@pytest.mark.ray
def test_a_run_waiting_for_cpus_says_so_and_goes_on_once_they_are_free(tiny_cfg, monkeypatch, caplog):
    """Ray Train waits silently while its worker group does not fit (a lost node, CPUs other jobs hold); the driver
    now says what it waits for and what the cluster has free, and when the workers are placed."""
    from cityagent.training import ray_wait
    from cityagent.training.ray_cluster import connect

    monkeypatch.setattr(ray_wait, "NOTE_AFTER_S", 3.0)
    connect(None, 2)
    try:
        hog = ray.remote(num_cpus=1)(Hog).remote()  # another job's actor holding one of the 2 CPUs
        ray.get(hog.ready.remote())
        free_on_note = FreeWhenSaid(hog)  # the hog goes once the wait has been said, so the run can go on
        logging.getLogger("cityagent.training.ray_wait").addHandler(free_on_note)
        unsaid = threading.Timer(180.0, free_on_note.free)  # without the note the run would wait for ever
        unsaid.start()
        with caplog.at_level(logging.WARNING, logger="cityagent.training.ray_wait"):
            result = fit(tiny_cfg(**{"train.workers": 2, "train.max_failures": 0}))
    finally:
        logging.getLogger("cityagent.training.ray_wait").removeHandler(free_on_note)
        unsaid.cancel()
        ray.shutdown()
    assert "test_mae" in result.metrics
    waited = [r.getMessage() for r in caplog.records if r.name == "cityagent.training.ray_wait"]
    assert len(waited) == 2, waited
    assert "waited" in waited[0] and "2 worker(s) × {1 CPU}" in waited[0]
    assert "1 of 2 CPUs free on 1 live node(s): other jobs hold them" in waited[0]
    assert "workers are placed after" in waited[1]


class Hog:
    def ready(self) -> bool:
        return True


class FreeWhenSaid(logging.Handler):
    def __init__(self, hog) -> None:
        super().__init__()
        self.hog = hog

    def emit(self, record: logging.LogRecord) -> None:
        if "waited" in record.getMessage():
            self.free()

    def free(self) -> None:
        ray.kill(self.hog)
