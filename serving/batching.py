"""Dynamic batching: concurrent requests for one model version are stacked along the batch axis into one ORT run.

Each loaded model version owns one Batcher. Requests wait at most `max_queue_delay_us` for company (counted from
the oldest waiting request), a run takes at most `max_batch_size` rows (a bigger single request runs alone), and a
queue already holding `max_queue_size` requests refuses more with RESOURCE_EXHAUSTED instead of growing without bound.

A lone client gains nothing from batching but pays two thread hand-offs per request (event loop → ORT worker →
event loop), which cost milliseconds on a busy machine. So a model runs in one of two modes. Inline: a lone request
on an idle model whose one-request run is short runs right on the event-loop thread. Batch: requests queue for the
worker task. While the loop runs a request inline it cannot read the next one, so concurrency is invisible there;
every PROBE_EVERY-th request therefore goes through the queue, and if others arrive while it runs the model switches
to batch mode, returning to inline only after QUIET_TO_INLINE single-request runs that found nobody waiting. Company
is counted across all models of the server, since an inline run holds up every model's requests.
"""

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from cityagent.serving.config import BatchingConfig
from cityagent.serving.errors import ModelUnavailable, QueueFull, ServingError
from cityagent.serving.metrics import ServingMetrics
from cityagent.serving.session import OrtModel

log = logging.getLogger(__name__)

PROBE_EVERY = 8  # inline runs between two probes through the queue
QUIET_TO_INLINE = 4  # queued single-request runs with nobody waiting before inline mode resumes


@dataclass
class _Item:
    inputs: dict[str, np.ndarray]
    rows: int
    key: tuple  # non-batch shapes: only items with equal keys can be stacked
    future: asyncio.Future
    enqueued: float  # time.perf_counter()


class Arrivals:
    """Requests submitted to any model of one server: a probe that sees this move while it runs has company,
    whichever model the company asked for (an inline run blocks the loop for every model)."""

    def __init__(self) -> None:
        self.count = 0


class Batcher:
    """Queue + worker task for one model version.

    Args:
        model: the loaded version.
        cfg: batching limits.
        executor: threads that run ORT (ORT releases the GIL, so the event loop keeps serving meanwhile).
        metrics: where queue times and batch sizes go (None: nowhere).
        arrivals: the server-wide request count, shared by all batchers (None: this batcher's own).
    """

    def __init__(
        self,
        model: OrtModel,
        cfg: BatchingConfig,
        executor: Executor,
        metrics: ServingMetrics | None = None,
        arrivals: Arrivals | None = None,
    ) -> None:
        self.model, self.cfg, self._executor, self._metrics = model, cfg, executor, metrics
        self._arrivals = arrivals or Arrivals()
        self._stack = cfg.enabled and model.signature.batched
        self._queue: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task | None = None
        self._busy = False  # the worker task has a batch on the executor
        self._single_run_s: float | None = None  # moving average of a one-request run, for the inline path
        self._inline_mode = True
        self._inline_runs = 0  # since the last probe
        self._quiet_runs = 0  # consecutive queued runs of one request that found nobody waiting

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._work(), name=f"batcher-{self.model.name}")

    def submit(self, inputs: dict[str, np.ndarray]) -> asyncio.Future:
        """Queue one validated request; the future resolves to its outputs. Synchronous, so a hot swap cannot
        slip between choosing this version and queueing on it."""
        if self._closing:
            raise ModelUnavailable(f"model '{self.model.name}' version {self.model.version} is being unloaded; retry.")
        if len(self._queue) >= self.cfg.max_queue_size:
            raise QueueFull(
                f"queue full: model '{self.model.name}' has {len(self._queue)} requests waiting "
                "(batching.max_queue_size); retry with backoff, or raise the limit."
            )
        self._arrivals.count += 1
        first = next(iter(inputs.values()))
        rows = first.shape[0] if self._stack else 1
        future = asyncio.get_running_loop().create_future()
        if self._inline_ok(rows):
            self._run_inline(inputs, rows, future)
            return future
        key = tuple((k, v.shape[1:]) for k, v in sorted(inputs.items()))
        self._queue.append(_Item(inputs, rows, key, future, time.perf_counter()))
        self._wakeup.set()
        return future

    def _inline_ok(self, rows: int) -> bool:
        limit = self.cfg.inline_below_us
        if not (
            limit > 0
            and self._inline_mode
            and not self._busy
            and not self._queue
            and rows == 1
            and self._single_run_s is not None
            and self._single_run_s * 1e6 < limit
        ):
            return False
        if self._inline_runs >= PROBE_EVERY - 1:  # this one probes for company through the queue
            self._inline_runs = 0
            return False
        self._inline_runs += 1
        return True

    def _note_company(self, requests: int, arrived: int) -> None:
        """After a queued run: others sharing it, waiting, or arriving for any model while it ran mean concurrent
        clients → batch mode."""
        if requests > 1 or self._queue or arrived:
            self._inline_mode, self._quiet_runs = False, 0
        elif not self._inline_mode:
            self._quiet_runs += 1
            self._inline_mode = self._quiet_runs >= QUIET_TO_INLINE

    def _run_inline(self, inputs: dict[str, np.ndarray], rows: int, future: asyncio.Future) -> None:
        start = time.perf_counter()
        if self._metrics is not None:
            self._metrics.observe_batch(self.model.name, [0.0], rows)
        try:  # nothing else runs on the loop meanwhile, so no state marks this run as busy
            outputs = self.model.run(inputs)
        except Exception as e:
            log.warning("model %s version %s failed: %s", self.model.name, self.model.version, e)
            future.set_exception(ServingError(f"model '{self.model.name}' failed on this input: {e}"))
            return
        self._note_single(time.perf_counter() - start)
        future.set_result(outputs)

    def _note_single(self, seconds: float) -> None:
        old = self._single_run_s
        self._single_run_s = seconds if old is None else 0.8 * old + 0.2 * seconds

    async def close(self) -> None:
        """Refuse new requests, finish every queued one on this version, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    async def _work(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._fill()
            batch = self._take()
            self._busy = True
            try:
                await self._run(batch)
            except Exception as e:  # a bug must fail this batch, not strand every later request
                log.exception("batch on %s version %s failed", self.model.name, self.model.version)
                for item in batch:
                    _settle(item, error=ServingError(f"model '{self.model.name}' failed on this batch: {e!r}"))
            finally:
                self._busy = False

    async def _fill(self) -> None:
        """Wait until the batch is full or the oldest request has waited max_queue_delay_us."""
        if not self._stack:
            return
        deadline = self._queue[0].enqueued + self.cfg.max_queue_delay_us / 1e6
        while not self._closing and sum(i.rows for i in self._queue) < self.cfg.max_batch_size:
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), left)
            except TimeoutError:
                return

    def _take(self) -> list[_Item]:
        """Pop the oldest request and every later one that stacks with it, up to max_batch_size rows."""
        first = self._queue.popleft()
        batch, rows = [first], first.rows
        if self._stack:
            keep: deque[_Item] = deque()
            while self._queue:
                item = self._queue.popleft()
                if item.key == first.key and rows + item.rows <= self.cfg.max_batch_size:
                    batch.append(item)
                    rows += item.rows
                else:
                    keep.append(item)
            self._queue = keep
        return batch

    def _timed_run(self, feed: dict[str, np.ndarray], requests: int) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        outputs = self.model.run(feed)
        if requests == 1 and next(iter(feed.values())).shape[0] == 1:
            self._note_single(time.perf_counter() - start)  # a float store: safe from the executor thread
        return outputs

    async def _run(self, batch: list[_Item]) -> None:
        batch = [i for i in batch if not i.future.done()]  # a cancelled client needs no answer
        if not batch:
            return
        start = time.perf_counter()
        if self._metrics is not None:
            self._metrics.observe_batch(
                self.model.name, [start - i.enqueued for i in batch], sum(i.rows for i in batch)
            )
        feed = batch[0].inputs if len(batch) == 1 else _stack(batch)
        loop = asyncio.get_running_loop()
        seen = self._arrivals.count
        try:
            outputs = await loop.run_in_executor(self._executor, self._timed_run, feed, len(batch))
        except Exception as e:
            if len(batch) > 1:  # one odd request must not fail its neighbours: retry each alone
                for item in batch:
                    await self._run([item])
                return
            log.warning("model %s version %s failed: %s", self.model.name, self.model.version, e)
            _settle(batch[0], error=ServingError(f"model '{self.model.name}' failed on this input: {e}"))
            return
        self._note_company(len(batch), self._arrivals.count - seen)
        offset = 0
        for item in batch:
            part = {k: v[offset : offset + item.rows] for k, v in outputs.items()} if len(batch) > 1 else outputs
            offset += item.rows
            _settle(item, result=part)


def _stack(batch: list[_Item]) -> dict[str, np.ndarray]:
    names = batch[0].inputs.keys()
    return {n: np.concatenate([i.inputs[n] for i in batch], axis=0) for n in names}  # [sum of B, ...]


def _settle(item: _Item, result: dict | None = None, error: Exception | None = None) -> None:
    if item.future.done():
        return
    if error is not None:
        item.future.set_exception(error)
    else:
        item.future.set_result(result)
