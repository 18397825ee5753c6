"""Dynamic batching and the bounded queue, with a stand-in model (pure code, a real worker thread):
merge decisions, requests stacked up to max_batch_size and split back, the delay waited only while
a batch is not full, incompatible shapes kept apart, a bad request failing alone, batching off
running requests one by one, the queue bound, and the metrics the worker records."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from mlmodel_runtime.backends.base import Array
from mlmodel_runtime.backends.errors import InferenceError
from mlmodel_runtime.batching import Batcher, Job, QueueFullError, merge_key, plan_batch, run_merged
from mlmodel_runtime.metrics import RuntimeMetrics
from prometheus_client import CollectorRegistry

from tests.support.waiting import wait_for

LABELS = {"model": "m", "revision": "3"}


class Doubler:
    """y = 2x; records the rows of every call; refuses negative inputs; can be held on a gate."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        self.gate.wait(10)
        x = np.asarray(inputs["x"], dtype=np.float32)
        self.calls.append(x.shape[0])
        if (x < 0).any():
            raise InferenceError("negative input")
        return {"y": x * 2, "z": x.sum(axis=tuple(range(1, x.ndim)))}


def job(rows: int, width: int = 3) -> Job:
    """A queued request as plan_batch sees it (its future is never used)."""
    x = np.zeros((rows, width), np.float32)
    merge = merge_key({"x": x})
    assert merge is not None
    loop = asyncio.new_event_loop()
    loop.close()
    return Job({"x": x}, ("y",), rows, merge[0], loop.create_future(), loop)


def test_merge_key_matches_requests_with_the_same_non_batch_dimensions() -> None:
    a = merge_key({"x": np.zeros((2, 3), np.float32), "w": np.zeros((2,), np.int64)})
    b = merge_key({"w": np.zeros((5,), np.int64), "x": np.zeros((5, 3), np.float32)})
    c = merge_key({"x": np.zeros((2, 4), np.float32), "w": np.zeros((2,), np.int64)})
    assert a is not None
    assert b is not None
    assert c is not None
    assert a[0] == b[0] != c[0]
    assert (a[1], b[1]) == (2, 5)
    assert merge_key({"x": np.zeros((2, 3)), "w": np.zeros((3,))}) is None  # no common batch dimension
    assert merge_key({"x": np.zeros(())}) is None


def test_plan_batch_takes_queued_requests_in_order_while_they_fit() -> None:
    first = job(2)
    assert plan_batch(first, [job(2), job(3), job(2)], max_rows=8) == 2  # 2+2+3 = 7; 9 is too many
    assert plan_batch(first, [job(2), job(3), job(1)], max_rows=8) == 3  # exactly 8 fits
    assert plan_batch(first, [job(2), job(1, width=4), job(1)], max_rows=8) == 1  # stops at the odd one
    assert plan_batch(first, [job(7)], max_rows=8) == 0


def test_run_merged_slices_each_request_its_rows_and_outputs() -> None:
    model = Doubler()
    jobs = [job(1), job(2)]
    jobs[0].inputs["x"][:] = 1
    jobs[1].inputs["x"][:] = [[2, 2, 2], [3, 3, 3]]
    jobs[1] = Job(jobs[1].inputs, ("z", "y"), 2, jobs[1].key, jobs[1].future, jobs[1].loop)
    first, second = run_merged(model, jobs)
    assert model.calls == [3]
    assert list(first) == ["y"]
    np.testing.assert_array_equal(first["y"], [[2, 2, 2]])
    np.testing.assert_array_equal(second["y"], [[4, 4, 4], [6, 6, 6]])
    np.testing.assert_array_equal(second["z"], [6, 9])


def make_batcher(model: Doubler, **options: float) -> tuple[Batcher, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = RuntimeMetrics(registry).for_model("m", "3")
    batcher = Batcher(model, metrics, **options)  # type: ignore[arg-type]
    batcher.start()
    return batcher, registry


def submit(batcher: Batcher, value: float, rows: int = 1, width: int = 3) -> asyncio.Future[dict[str, Array]]:
    x = np.full((rows, width), value, np.float32)
    return batcher.submit({"x": x}, ("y",), rows)


async def test_queued_requests_are_merged_up_to_max_batch_size_and_split_back() -> None:
    model = Doubler()
    batcher, registry = make_batcher(model, max_batch_size=4, max_delay_s=5.0)
    rows = [1, 3, 2, 2]
    try:
        futures = [submit(batcher, float(i), rows=r) for i, r in enumerate(rows)]
        results = await asyncio.wait_for(asyncio.gather(*futures), 10)
    finally:
        batcher.stop()
    for i, (result, r) in enumerate(zip(results, rows, strict=True)):
        np.testing.assert_array_equal(result["y"], np.full((r, 3), 2.0 * i))
    # two full batches (1+3, 2+2): a full batch does not wait the 5 s delay
    assert model.calls == [4, 4]
    assert registry.get_sample_value("mlmodel_runtime_batch_size_sum", LABELS) == 8
    assert registry.get_sample_value("mlmodel_runtime_batch_size_count", LABELS) == 2
    assert registry.get_sample_value("mlmodel_runtime_inference_duration_seconds_count", LABELS) == 2
    assert registry.get_sample_value("mlmodel_runtime_queue_duration_seconds_count", LABELS) == 4


async def test_a_lone_request_waits_the_delay_for_company_then_runs_alone() -> None:
    model = Doubler()
    batcher, _ = make_batcher(model, max_batch_size=8, max_delay_s=0.2)
    try:
        started = time.perf_counter()
        result = await asyncio.wait_for(submit(batcher, 1.0), 10)
        elapsed = time.perf_counter() - started
    finally:
        batcher.stop()
    assert elapsed >= 0.2
    assert model.calls == [1]
    np.testing.assert_array_equal(result["y"], [[2, 2, 2]])


async def test_requests_with_other_shapes_are_not_merged() -> None:
    model = Doubler()
    model.gate.clear()
    batcher, _ = make_batcher(model, max_batch_size=8, max_delay_s=0.0)
    try:
        blocker = submit(batcher, 0.0, width=7)  # never merged with the others
        wait_for(lambda: batcher.depth() == 0, 5, "the worker to take the first request")
        narrow = [submit(batcher, 1.0, width=3) for _ in range(2)]
        wide = [submit(batcher, 1.0, width=5) for _ in range(2)]
        model.gate.set()
        await asyncio.wait_for(asyncio.gather(blocker, *narrow, *wide), 10)
    finally:
        batcher.stop()
    assert model.calls == [1, 2, 2]


async def test_a_bad_request_in_a_merged_batch_fails_alone() -> None:
    model = Doubler()
    model.gate.clear()
    batcher, _ = make_batcher(model, max_batch_size=8, max_delay_s=0.0)
    try:
        blocker = submit(batcher, 0.0, width=7)  # never merged with the others
        wait_for(lambda: batcher.depth() == 0, 5, "the worker to take the first request")
        good, bad, other = submit(batcher, 1.0), submit(batcher, -1.0), submit(batcher, 2.0)
        model.gate.set()
        results = await asyncio.wait_for(asyncio.gather(blocker, good, bad, other, return_exceptions=True), 10)
    finally:
        batcher.stop()
    assert isinstance(results[2], InferenceError)
    np.testing.assert_array_equal(results[1]["y"], [[2, 2, 2]])  # type: ignore[index]
    np.testing.assert_array_equal(results[3]["y"], [[4, 4, 4]])  # type: ignore[index]
    assert model.calls == [1, 3, 1, 1, 1]  # the merged try, then one by one


async def test_with_batching_off_every_request_runs_alone() -> None:
    model = Doubler()
    model.gate.clear()
    batcher, _ = make_batcher(model, max_batch_size=1)
    try:
        futures = [submit(batcher, 1.0) for _ in range(4)]
        model.gate.set()
        await asyncio.wait_for(asyncio.gather(*futures), 10)
    finally:
        batcher.stop()
    assert model.calls == [1, 1, 1, 1]


async def test_a_full_queue_refuses_new_requests_and_reports_its_depth() -> None:
    model = Doubler()
    model.gate.clear()
    batcher, registry = make_batcher(model, max_queue_size=2)
    try:
        running = submit(batcher, 1.0)
        wait_for(lambda: batcher.depth() == 0, 5, "the worker to take the first request")
        queued = [submit(batcher, 1.0), submit(batcher, 1.0)]
        assert registry.get_sample_value("mlmodel_runtime_queue_depth", LABELS) == 2
        with pytest.raises(QueueFullError, match="2 requests are queued already"):
            submit(batcher, 1.0)
        model.gate.set()
        await asyncio.wait_for(asyncio.gather(running, *queued), 10)
    finally:
        batcher.stop()
    assert registry.get_sample_value("mlmodel_runtime_queue_depth", LABELS) == 0
