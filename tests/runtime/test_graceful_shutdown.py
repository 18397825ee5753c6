"""SIGTERM under load: a real runtime stops taking new connections at once, answers every request it
had accepted (slow ones in the model, fast ones queued behind them, keep-alive clients still
sending), loses none (the clients' 200s equal the server's own count), and exits 0 well inside the
pod's 30 s grace period."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from tests.runtime.conftest import Serve
from tests.runtime.models import SLOW_WIDTH, binary_body
from tests.runtime.process import RuntimeServer
from tests.support.waiting import wait_for

SLOW_ROWS = 512


def slow(server: RuntimeServer, value: float) -> int:
    x = np.full((SLOW_ROWS, SLOW_WIDTH), value, np.float32)
    body, headers = binary_body({"input": x}, parameters={"binary_data_output": True})
    response = httpx.post(f"{server.base_url}/v2/models/slow/infer", content=body, headers=headers, timeout=120)
    assert response.status_code == 200, response.text
    header = int(response.headers["inference-header-content-length"])
    assert (np.frombuffer(response.content[header:], np.float32) == value).all()
    return response.status_code


def keep_sending(server: RuntimeServer) -> tuple[list[int], str]:
    """Small requests on one keep-alive connection until the server stops taking them.

    Returns the statuses received and how the loop ended: only a connection the server closed or
    refused ends it; a 5xx, a truncated body or any other error is recorded as a failure.
    """
    x = np.ones((1, SLOW_WIDTH), np.float32)
    body, headers = binary_body({"input": x}, parameters={"binary_data_output": True})
    statuses: list[int] = []
    with httpx.Client(base_url=server.base_url, timeout=120) as client:
        while True:
            try:
                response = client.post("/v2/models/slow/infer", content=body, headers=headers)
            except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
                # refused, or an idle keep-alive connection closed before the server read this request
                return statuses, type(exc).__name__
            statuses.append(response.status_code)
            header = int(response.headers.get("inference-header-content-length", "0"))
            if response.status_code != 200 or len(response.content) != header + SLOW_WIDTH * 4:
                return statuses, f"bad response {response.status_code}: {response.content[:200]!r}"


def test_sigterm_under_load_answers_every_accepted_request_and_exits_0(slow_package: Path, serve: Serve) -> None:
    server = serve(slow_package, model="slow", max_queue_size=1000)
    labels = {"model": "slow", "revision": ""}
    with ThreadPoolExecutor(8) as pool:
        senders = [pool.submit(keep_sending, server) for _ in range(3)]
        wait_for(lambda: server.metric("mlmodel_runtime_requests_total", code="200", **labels) >= 6, 60, "steady load")
        slow_ones = [pool.submit(slow, server, float(v)) for v in (2, 3, 4)]
        wait_for(
            lambda: server.metric("mlmodel_runtime_inflight_requests", **labels) >= 6,
            60,
            "the slow requests and the senders' next requests to be accepted",
        )
        signalled = time.monotonic()
        server.signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                httpx.get(f"{server.base_url}/v2/health/live", timeout=1)
            except httpx.ConnectError:
                return True
            return False

        wait_for(refused, 10, "the listener to close after SIGTERM")
        assert server.proc.poll() is None or server.proc.returncode == 0  # still finishing (or done)

        assert [f.result(120) for f in slow_ones] == [200, 200, 200]
        results = [f.result(120) for f in senders]
    exit_code = server.wait(60)
    elapsed = time.monotonic() - signalled

    assert exit_code == 0
    assert elapsed < 25
    for statuses, ending in results:
        assert ending in ("ConnectError", "RemoteProtocolError"), ending
        assert statuses
        assert set(statuses) == {200}
    answered = sum(len(statuses) for statuses, _ in results) + len(slow_ones)
    records = server.log_records()
    final = records[-1]
    assert final["message"] == "stopped"
    assert final["requests_by_code"] == {"200": answered}
    messages = [r["message"] for r in records]
    assert messages.index("draining: readiness is now false") < messages.index("stopped")
