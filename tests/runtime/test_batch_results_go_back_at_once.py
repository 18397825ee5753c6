"""A finished batch's results are not held back for the next one (pure code, a real worker thread):
never while the next batch waits for its batching delay, and never while it runs when the model is
slower than the hold (1 ms); only a quick model's results may share a wake-up of the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence

import numpy as np
from mlmodel_runtime.backends.base import Array
from mlmodel_runtime.batching import Batcher
from mlmodel_runtime.metrics import RuntimeMetrics
from prometheus_client import CollectorRegistry


class SecondCallBlocks:
    """y = x; the first call computes for `first_s` (simulated), every later call waits on `gate`."""

    def __init__(self, first_s: float = 0.0) -> None:
        self.gate = threading.Event()
        self.calls = 0
        self.first_s = first_s

    def __call__(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        self.calls += 1
        if self.calls == 1:
            time.sleep(self.first_s)  # the model computing, not a wait for a condition
        else:
            self.gate.wait(10)
        return {"y": np.asarray(inputs["x"])}


def batcher_for(model: SecondCallBlocks, **options: float) -> Batcher:
    metrics = RuntimeMetrics(CollectorRegistry()).for_model("m", "1")
    batcher = Batcher(model, metrics, **options)  # type: ignore[arg-type]
    batcher.start()
    return batcher


def submit(batcher: Batcher, rows: int) -> asyncio.Future[dict[str, Array]]:
    return batcher.submit({"x": np.ones((rows, 2), np.float32)}, ("y",), rows)


async def check_first_result_is_not_held(batcher: Batcher, model: SecondCallBlocks, rows: tuple[int, int]) -> None:
    try:
        first = submit(batcher, rows[0])
        second = submit(batcher, rows[1])  # queued while the first runs: it starts the next batch
        result = await asyncio.wait_for(first, 5)  # before: held until the second batch had run
        np.testing.assert_array_equal(result["y"], np.ones((rows[0], 2)))
        assert not second.done()
    finally:
        model.gate.set()
        batcher.stop()
    await asyncio.wait_for(second, 5)


async def test_a_slow_models_result_does_not_wait_for_the_next_request() -> None:
    model = SecondCallBlocks(first_s=0.005)
    await check_first_result_is_not_held(batcher_for(model), model, (1, 1))


async def test_with_batching_a_full_batch_does_not_wait_for_the_next_batch_or_its_delay() -> None:
    model = SecondCallBlocks()
    batcher = batcher_for(model, max_batch_size=2, max_delay_s=30.0)
    await check_first_result_is_not_held(batcher, model, (2, 1))
