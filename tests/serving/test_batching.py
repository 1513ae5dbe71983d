"""The batcher's inline path: a lone request on an idle, fast model runs on the event loop; anything else queues."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from cityagent.serving.batching import Batcher
from cityagent.serving.config import BatchingConfig, OrtConfig
from cityagent.serving.errors import ServingError
from cityagent.serving.session import OrtModel
from tests.serving import onnx_models as om


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(2)
        self.submitted = 0

    def submit(self, fn, /, *args, **kwargs):
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
def model(tmp_path) -> OrtModel:
    return OrtModel("m", "1", om.save(om.linear_model(), tmp_path / "m.onnx"), OrtConfig())


def run(coro):
    return asyncio.run(coro)


async def _answer(batcher: Batcher, x: np.ndarray) -> np.ndarray:
    return (await batcher.submit({"x": x}))["y"]


def test_a_lone_request_runs_inline_once_the_model_is_known_to_be_fast(model):
    async def go() -> tuple[int, int]:
        executor = CountingExecutor()
        batcher = Batcher(model, BatchingConfig(inline_below_us=10**9), executor)
        batcher.start()
        x = om.window(1, seed=1)
        first = await _answer(batcher, x)  # no run time measured yet: the executor runs it and times it
        after_first = executor.submitted
        for seed in range(5):
            y = await _answer(batcher, om.window(1, seed=seed))
            np.testing.assert_allclose(y, om.reference(om.window(1, seed=seed)), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(first, om.reference(x), rtol=1e-5, atol=1e-4)
        await batcher.close()
        executor.shutdown()
        return after_first, executor.submitted

    after_first, total = run(go())
    assert after_first == 1 and total == 1


def test_inline_off_or_a_slow_model_always_uses_the_workers(model):
    async def go(inline_below_us: int) -> int:
        executor = CountingExecutor()
        batcher = Batcher(model, BatchingConfig(inline_below_us=inline_below_us), executor)
        batcher.start()
        for seed in range(4):
            await _answer(batcher, om.window(1, seed=seed))
        await batcher.close()
        executor.shutdown()
        return executor.submitted

    assert run(go(0)) == 4
    assert run(go(1)) == 4  # no CPU runs this model in under a microsecond


def test_requests_that_arrive_while_a_run_is_busy_queue_and_share_a_batch(model):
    async def go() -> tuple[int, list[np.ndarray], list[np.ndarray]]:
        executor = CountingExecutor()
        batcher = Batcher(model, BatchingConfig(inline_below_us=10**9, max_batch_size=8), executor)
        batcher.start()
        await _answer(batcher, om.window(1, seed=0))  # now known to be fast
        gate = threading.Event()
        real_run = model.run

        def slow_run(feed, outputs=None):
            gate.wait(10)
            return real_run(feed, outputs)

        model.run = slow_run
        xs = [om.window(1, seed=s) for s in range(5)]
        # A lone request on the idle model would run inline and block the loop; a two-row one never runs inline.
        busy = asyncio.ensure_future(_answer(batcher, om.window(2, seed=9)))
        await asyncio.sleep(0.05)  # the worker task has taken it and is blocked in slow_run
        rest = [asyncio.ensure_future(_answer(batcher, x)) for x in xs]
        await asyncio.sleep(0.05)
        gate.set()
        answers = await asyncio.gather(busy, *rest)
        await batcher.close()
        executor.shutdown()
        return executor.submitted, xs, answers[1:]

    submitted, xs, answers = run(go())
    for x, y in zip(xs, answers, strict=True):
        np.testing.assert_allclose(y, om.reference(x), rtol=1e-5, atol=1e-4)
    assert submitted == 3  # the timing run, the busy one, then all five queued ones together


def test_an_inline_failure_costs_that_request_only(model):
    async def go() -> None:
        executor = CountingExecutor()
        batcher = Batcher(model, BatchingConfig(inline_below_us=10**9), executor)
        batcher.start()
        await _answer(batcher, om.window(1, seed=0))
        real_run, calls = model.run, []

        def fail_once(feed, outputs=None):
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("bad input for this kernel")
            return real_run(feed, outputs)

        model.run = fail_once
        with pytest.raises(ServingError, match="model 'm' failed on this input: bad input for this kernel"):
            await _answer(batcher, om.window(1, seed=1))
        y = await _answer(batcher, om.window(1, seed=2))
        np.testing.assert_allclose(y, om.reference(om.window(1, seed=2)), rtol=1e-5, atol=1e-4)
        await batcher.close()
        executor.shutdown()

    run(go())


def test_a_probe_that_finds_company_switches_to_batching_until_the_clients_are_alone_again(model):
    from cityagent.serving.batching import PROBE_EVERY, QUIET_TO_INLINE

    async def go() -> list[int]:
        executor = CountingExecutor()
        batcher = Batcher(model, BatchingConfig(inline_below_us=10**9, max_batch_size=8), executor)
        batcher.start()
        seen = []
        await _answer(batcher, om.window(1, seed=0))  # timing run on a worker
        for seed in range(PROBE_EVERY - 1):
            await _answer(batcher, om.window(1, seed=seed))
        seen.append(executor.submitted)  # all inline: still 1
        gate, real_run = threading.Event(), model.run

        def slow_run(feed, outputs=None):
            gate.wait(10)
            return real_run(feed, outputs)

        model.run = slow_run
        probe = asyncio.ensure_future(_answer(batcher, om.window(1, seed=50)))  # the probe goes to a worker
        await asyncio.sleep(0.05)
        company = [asyncio.ensure_future(_answer(batcher, om.window(1, seed=s))) for s in range(3)]
        gate.set()
        await asyncio.gather(probe, *company)
        model.run = real_run
        seen.append(executor.submitted)  # probe + the three together
        for seed in range(QUIET_TO_INLINE):  # alone again: queued until enough quiet runs
            await _answer(batcher, om.window(1, seed=seed))
        seen.append(executor.submitted)
        for seed in range(3):
            await _answer(batcher, om.window(1, seed=seed))
        seen.append(executor.submitted)  # inline again
        await batcher.close()
        executor.shutdown()
        return seen

    assert run(go()) == [1, 3, 3 + QUIET_TO_INLINE, 3 + QUIET_TO_INLINE]


def test_company_on_another_model_also_ends_inline_mode(tmp_path):
    """An inline run blocks the loop for every model, so a probe that sees another model's request switches too."""
    from cityagent.serving.batching import PROBE_EVERY, Arrivals

    a = OrtModel("a", "1", om.save(om.linear_model(), tmp_path / "a.onnx"), OrtConfig())
    b = OrtModel("b", "1", om.save(om.linear_model(scale=2.0), tmp_path / "b.onnx"), OrtConfig())

    async def go() -> tuple[int, int]:
        executor, arrivals = CountingExecutor(), Arrivals()
        cfg = BatchingConfig(inline_below_us=10**9)
        on_a, on_b = Batcher(a, cfg, executor, arrivals=arrivals), Batcher(b, cfg, executor, arrivals=arrivals)
        on_a.start()
        on_b.start()
        for seed in range(PROBE_EVERY):  # the timing run, then inline runs up to the probe
            await _answer(on_a, om.window(1, seed=seed))
        before = executor.submitted
        gate, real_run = threading.Event(), a.run

        def slow_run(feed, outputs=None):
            gate.wait(10)
            return real_run(feed, outputs)

        a.run = slow_run
        probe = asyncio.ensure_future(_answer(on_a, om.window(1, seed=50)))
        await asyncio.sleep(0.05)
        other = asyncio.ensure_future(_answer(on_b, om.window(1, seed=51)))  # b's first request: a worker run
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(probe, other)
        a.run = real_run
        after_probe = executor.submitted
        await _answer(on_a, om.window(1, seed=52))  # a is in batch mode now: a worker run, not inline
        for batcher in (on_a, on_b):
            await batcher.close()
        executor.shutdown()
        return after_probe - before, executor.submitted - after_probe

    assert run(go()) == (2, 1)
