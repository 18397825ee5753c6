"""Under load, a real runtime with a slow model: a full queue answers 503 with Retry-After (and the
queued requests still complete), and the liveness and readiness probes answer while the
model computes, without waiting for it, because inference runs off the event loop."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from tests.runtime.conftest import Serve
from tests.runtime.models import SLOW_WIDTH, binary_body
from tests.support.waiting import wait_for

ROWS = 512  # about a second of the slow model here


def slow_request(base_url: str, value: float) -> tuple[int, np.ndarray | None]:
    x = np.full((ROWS, SLOW_WIDTH), value, np.float32)
    body, headers = binary_body({"input": x}, parameters={"binary_data_output": True})
    response = httpx.post(f"{base_url}/v2/models/slow/infer", content=body, headers=headers, timeout=120)
    if response.status_code != 200:
        return response.status_code, None
    header = int(response.headers["inference-header-content-length"])
    return 200, np.frombuffer(response.content[header:], np.float32).reshape(ROWS, SLOW_WIDTH)


def test_a_full_queue_gets_503_with_retry_after_and_probes_stay_prompt(slow_package: Path, serve: Serve) -> None:
    server = serve(slow_package, model="slow", max_queue_size=1)
    labels = {"model": "slow", "revision": ""}
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(slow_request, server.base_url, 1.0)
        wait_for(lambda: server.metric("mlmodel_runtime_inflight_requests", **labels) == 1, 30, "the first request")
        queued = pool.submit(slow_request, server.base_url, 2.0)
        wait_for(lambda: server.metric("mlmodel_runtime_queue_depth", **labels) == 1, 30, "a queued request")

        refused = server.infer(b'{"inputs": []}')  # refused before it is even parsed
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "model 'slow' is busy: 1 requests are queued already; retry shortly" in refused.json()["error"]

        # the model is computing now: probes are answered by the event loop without waiting for it (the second
        # request is still queued after all of them, so the first is still computing: they did not wait)
        for path in ("/v2/health/live", "/v2/models/slow/ready", "/v2/health/ready", "/v2/health/startup"):
            assert server.get(path).status_code == 200, path
        assert server.metric("mlmodel_runtime_queue_depth", **labels) == 1

        for future, value in ((running, 1.0), (queued, 2.0)):
            status, output = future.result(120)
            assert status == 200
            assert output is not None
            assert (output == value).all()
    assert server.metric("mlmodel_runtime_requests_total", code="503", **labels) == 1
    assert server.metric("mlmodel_runtime_requests_total", code="200", **labels) == 2
    assert server.metric("mlmodel_runtime_queue_duration_seconds_count", **labels) == 2
