"""The per-model request queue and the worker thread that runs the model, with dynamic batching.

Requests from the event loop go into a bounded queue (full: QueueFull, answered 503 with
Retry-After); one worker thread takes them off and runs the model, so the event loop stays free
for health probes and parsing while the framework computes.

With dynamic batching on (max_batch_size > 1) the worker merges queued requests like Triton's
dynamic batcher: it starts a batch with the oldest request and adds the ones queued behind it
while they fit in max_batch_size rows, waiting at most max_delay from the oldest request's
arrival for more; requests are never split, a request that does not fit (or has other
non-batch dimensions) starts the next batch. Outputs are sliced back per request. If a merged
batch fails, its requests are retried one by one so that one bad request fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mlmodel_runtime.backends.base import Array
from mlmodel_runtime.backends.errors import InferenceError
from mlmodel_runtime.metrics import ModelMetrics

Predict = Callable[[Mapping[str, Array], Sequence[str]], dict[str, Array]]

log = logging.getLogger(__name__)

# Results may wait this long for others to go back with (one wake-up of the event loop for several).
_HOLD_RESULTS_S = 0.001


class QueueFullError(Exception):
    """The queue holds max_queue_size requests already."""


@dataclass(slots=True, eq=False)
class Job:
    """One request waiting for the model."""

    inputs: dict[str, Array]
    outputs: tuple[str, ...]
    rows: int
    key: Hashable | None
    """Requests with equal keys can be stacked; None: run alone."""
    future: asyncio.Future[dict[str, Array]]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)


def merge_key(inputs: Mapping[str, Array]) -> tuple[Hashable, int] | None:
    """What must match for two requests to share a batch, and the rows of this one.

    None when the inputs do not agree on a first (batch) dimension.
    """
    rows = -1
    key: list[tuple[str, str, tuple[int, ...]]] = []
    for name in sorted(inputs):
        array = inputs[name]
        if array.ndim == 0 or (rows >= 0 and array.shape[0] != rows):
            return None
        rows = array.shape[0]
        key.append((name, array.dtype.str, array.shape[1:]))
    return tuple(key), rows


def fits(batch_key: Hashable | None, batch_rows: int, job: Job, max_rows: int) -> bool:
    """Whether `job` may join a batch of `batch_rows` rows with key `batch_key` (a pure decision)."""
    return batch_key is not None and job.key == batch_key and batch_rows + job.rows <= max_rows


def plan_batch(first: Job, queued: Sequence[Job], max_rows: int) -> int:
    """How many of `queued`, in order, join a batch that starts with `first`."""
    rows = first.rows
    taken = 0
    for job in queued:
        if not fits(first.key, rows, job, max_rows):
            break
        rows += job.rows
        taken += 1
    return taken


def run_merged(predict: Predict, jobs: Sequence[Job]) -> list[dict[str, Array]]:
    """Stack the jobs' inputs on the first dimension, run once, slice the outputs back."""
    names = list(dict.fromkeys(n for job in jobs for n in job.outputs))
    merged = {name: np.concatenate([job.inputs[name] for job in jobs]) for name in jobs[0].inputs}
    total = sum(job.rows for job in jobs)
    outputs = predict(merged, names)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise InferenceError(
                f"output '{name}' has first dimension {array.shape[:1]} for a merged batch of {total} rows; "
                "this model cannot be batched"
            )
    results: list[dict[str, Array]] = []
    start = 0
    for job in jobs:
        end = start + job.rows
        results.append({name: outputs[name][start:end] for name in job.outputs})
        start = end
    return results


class Batcher:
    """Bounded queue plus one worker thread that runs `predict`, merging requests when enabled."""

    _STOP = object()

    def __init__(
        self,
        predict: Predict,
        metrics: ModelMetrics,
        *,
        max_batch_size: int = 0,
        max_delay_s: float = 0.0,
        max_queue_size: int = 256,
    ) -> None:
        self._predict = predict
        self._metrics = metrics
        self._max_rows = max_batch_size
        self._batching = max_batch_size > 1
        self._max_delay = max_delay_s
        # SimpleQueue is C code, cheaper per put/get than queue.Queue; only the event loop's thread
        # puts, so checking the size before putting bounds it exactly.
        self._queue: queue.SimpleQueue[Job | object] = queue.SimpleQueue()
        self._max_queue = max_queue_size
        self._carry: Job | None = None
        self._stopped = False
        self._outbox = Outbox()
        self._run_estimate = 0.0
        """Moving average of the time one batch takes to run."""
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        metrics.track_queue_depth(self.depth)

    @property
    def batching(self) -> bool:
        return self._batching

    def depth(self) -> int:
        """Requests waiting (not yet taken into a batch)."""
        return self._queue.qsize() + (self._carry is not None)

    @property
    def max_queue_size(self) -> int:
        return self._max_queue

    def full(self) -> bool:
        return self._queue.qsize() >= self._max_queue

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Let the worker finish what is queued, then end it."""
        if self._thread.is_alive():
            self._queue.put(self._STOP)
            self._thread.join(timeout)

    def submit(self, inputs: dict[str, Array], outputs: tuple[str, ...], rows: int) -> asyncio.Future[dict[str, Array]]:
        """Queue a request (from the event loop); the future resolves with its outputs."""
        loop = asyncio.get_running_loop()
        key: Hashable | None = None
        if self._batching:
            merge = merge_key(inputs)
            if merge is not None:
                key, rows = merge
        job = Job(inputs, outputs, rows, key, loop.create_future(), loop)
        if self._queue.qsize() >= self._max_queue:
            raise QueueFullError(f"{self._max_queue} requests are queued already")
        self._queue.put(job)
        return job.future

    # ---- worker thread

    def _run(self) -> None:
        outbox = self._outbox
        while not self._stopped:
            first = self._take(timeout=None)
            if first is None:
                break
            jobs = [first]
            if self._batching and first.key is not None and first.rows < self._max_rows:
                self._gather(first, jobs)
            outbox.add(self._execute(jobs))
            # hold results for company only while the next job is queued and quick to run
            if (
                (self._carry is None and self._queue.empty())
                or time.perf_counter() - outbox.held_since + self._run_estimate > _HOLD_RESULTS_S
            ):
                outbox.send()
        outbox.send()

    def _take(self, timeout: float | None) -> Job | None:
        """The next job: wait up to `timeout` (None: forever, 0: not at all); None when none or stopping."""
        if self._carry is not None:
            job, self._carry = self._carry, None
            return job
        if timeout != 0 and self._queue.empty():
            self._outbox.send()  # never wait with results in hand
        try:
            item = self._queue.get(timeout is None or timeout > 0, timeout if timeout else None)
        except queue.Empty:
            return None
        if item is self._STOP:
            self._stopped = True
            return None
        assert isinstance(item, Job)
        return item

    def _gather(self, first: Job, jobs: list[Job]) -> None:
        rows = first.rows
        deadline = first.enqueued + self._max_delay
        while rows < self._max_rows and not self._stopped:
            job = self._take(timeout=max(0.0, deadline - time.perf_counter()))
            if job is None:
                return
            if not fits(first.key, rows, job, self._max_rows):
                self._carry = job  # it starts the next batch
                return
            jobs.append(job)
            rows += job.rows

    def _execute(self, jobs: list[Job]) -> list[tuple[Job, dict[str, Array] | BaseException]]:
        started = time.perf_counter()
        for job in jobs:
            self._metrics.queue_duration.observe(started - job.enqueued)
        try:
            if len(jobs) == 1:
                results: list[dict[str, Array] | BaseException] = [self._predict(jobs[0].inputs, jobs[0].outputs)]
            else:
                results = list(run_merged(self._predict, jobs))
        except InferenceError as exc:
            if len(jobs) == 1:
                results = [exc]
            else:
                log.warning("merged batch of %d requests failed (%s); running them one by one", len(jobs), exc)
                results = [self._alone(job) for job in jobs]
        except Exception as exc:  # a bug or a framework fault: fail these requests, keep serving
            log.exception("inference failed")
            results = [exc] * len(jobs)
        took = time.perf_counter() - started
        self._run_estimate = took if not self._run_estimate else self._run_estimate + (took - self._run_estimate) / 8
        self._metrics.inference_duration.observe(took)
        self._metrics.batch_size.observe(sum(job.rows for job in jobs))
        return list(zip(jobs, results, strict=True))

    def _alone(self, job: Job) -> dict[str, Array] | BaseException:
        try:
            return self._predict(job.inputs, job.outputs)
        except Exception as exc:
            return exc


class Outbox:
    """Finished jobs on their way back to the event loop.

    The worker adds results and sends them; while more requests are queued and the model is quick
    (the batches' moving average run time), it may add a few batches' results before sending, so
    that one wake-up of the event loop resolves several, but it sends before it waits for anything
    (a job, a batch to fill) and once the oldest result would wait longer than _HOLD_RESULTS_S.
    Results added while a send is still pending on the loop join it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[Job, dict[str, Array] | BaseException]] = []
        self._unsent: list[tuple[Job, dict[str, Array] | BaseException]] = []
        self.held_since = 0.0
        """When the oldest unsent result was added."""

    def add(self, done: list[tuple[Job, dict[str, Array] | BaseException]]) -> None:
        """From the worker thread: results to send with the next send()."""
        if not self._unsent:
            self.held_since = time.perf_counter()
        self._unsent.extend(done)

    def send(self) -> None:
        """From the worker thread: hand every unsent result to the event loop."""
        done = self._unsent
        if not done:
            return
        self._unsent = []
        with self._lock:
            scheduled = bool(self._pending)
            self._pending.extend(done)
        if not scheduled:
            loop = done[0][0].loop  # one loop per server process
            with contextlib.suppress(RuntimeError):  # a closed event loop: nobody waits any more
                loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        """On the event loop: resolve every pending job's future."""
        with self._lock:
            done, self._pending = self._pending, []
        for job, result in done:
            future = job.future
            if future.done():  # the client went away
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
