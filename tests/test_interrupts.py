"""A SIGTERM turned into an exception waits for a store write to end (``deferred``) and does not cut work that must
finish with the run (``uninterrupted``); the handlers are real, and so is the signal."""

import os
import pickle
import signal
import threading
from collections.abc import Iterator

import pytest

from cityagent.agent.schedule import Interrupted
from cityagent.interrupts import deferred, held, interrupt, uninterrupted
from cityagent.training.tracked_run import TrackedRun, held_for


@pytest.fixture
def handler() -> Iterator[None]:
    """What the scheduler's and `cityagent train`'s handlers do with a SIGTERM."""
    previous = signal.signal(signal.SIGTERM, lambda *_: interrupt(Interrupted("stopped by SIGTERM")))
    yield
    signal.signal(signal.SIGTERM, previous)


def sigterm_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def test_outside_any_block_the_interrupt_is_raised_where_it_lands(handler):
    steps = []
    with pytest.raises(Interrupted):
        sigterm_self()
        steps.append("went on")
    assert steps == []


def test_inside_deferred_blocks_the_write_finishes_and_the_outermost_end_raises(handler):
    steps = []
    with pytest.raises(Interrupted, match="stopped by SIGTERM"):
        with deferred():
            with deferred():
                sigterm_self()
                steps.append("row written")
            steps.append("commit")  # the inner block's end is not the outermost one
        steps.append("after the block")
    assert steps == ["row written", "commit"]
    with deferred():  # nothing is left pending for the next write
        steps.append("next write")
    assert steps[-1] == "next write"


def test_a_write_that_fails_meanwhile_is_the_context_of_the_interrupt(handler):
    with pytest.raises(Interrupted) as caught:
        with deferred():
            sigterm_self()
            raise OSError("disk full")
    assert isinstance(caught.value.__context__, OSError)


def test_uninterrupted_lets_the_block_finish_and_says_so(handler):
    assert not held()
    with uninterrupted():
        assert held()
    assert not held()


def test_other_threads_are_untouched_by_deferred():
    outcome = []

    def write() -> None:
        with deferred():
            outcome.append("written")
        try:
            interrupt(Interrupted("raised where called"))
        except Interrupted as e:
            outcome.append(str(e))

    worker = threading.Thread(target=write)
    worker.start()
    worker.join()
    assert outcome == ["written", "raised where called"]


@pytest.mark.parametrize(
    ("uri", "held"),
    [
        ("sqlite:///mlflow.db", True),
        ("postgresql://mlflow@127.0.0.1/mlflow", True),
        ("/srv/mlruns", True),
        ("http://127.0.0.1:5000", False),
        ("https://mlflow.example.org", False),
    ],
)
def test_only_a_store_written_in_this_process_holds_the_sigterm(handler, uri, held):
    steps = []
    with pytest.raises(Interrupted):
        with held_for(uri):
            sigterm_self()  # a server that is down would hold it for a minute of retries: not worth waiting for
            steps.append("call ended")
    assert steps == (["call ended"] if held else [])


def test_a_sigterm_during_a_store_call_lets_it_land_and_the_run_is_marked_failed(handler, tmp_path):
    run = TrackedRun.start(f"sqlite:///{tmp_path / 'mlflow.db'}", "interrupts", "sigterm-mid-write")

    def log_while_sigterm_comes(*args, **kwargs):
        sigterm_self()  # lands inside the store call
        return run.client.log_batch(*args, **kwargs)

    with pytest.raises(Interrupted):
        with run:
            from mlflow.entities import Metric

            run._call(log_while_sigterm_comes, run.run_id, metrics=[Metric("train_loss", 0.5, 0, 1)])
            raise AssertionError("the interrupt must end the run as the write ends")
    done = run.client.get_run(run.run_id)
    assert done.info.status == "FAILED" and done.data.metrics == {"train_loss": 0.5}


def test_a_registry_write_through_a_local_stores_client_ends_before_the_sigterm_lands(handler, tmp_path, monkeypatch):
    """Export and the gate write the registry through ``client_for``'s client, not TrackedRun: a SIGTERM that comes
    inside such a call (here: as it starts) waits for the write to land, then raises."""
    from mlflow import MlflowClient

    from cityagent.training.tracking import client_for

    client = client_for(f"sqlite:///{tmp_path / 'mlflow.db'}")
    create = MlflowClient.create_registered_model

    def sigterm_then_create(self, *args, **kwargs):
        sigterm_self()
        return create(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "create_registered_model", sigterm_then_create)
    with pytest.raises(Interrupted):
        client.create_registered_model("traffic-sigterm")
        raise AssertionError("the interrupt must come as the write ends")
    assert client.get_registered_model("traffic-sigterm").name == "traffic-sigterm"
    assert client.tracking_uri.startswith("sqlite:///") and isinstance(client, MlflowClient)
    assert pickle.loads(pickle.dumps(client)).get_registered_model("traffic-sigterm")  # pickles like MlflowClient
