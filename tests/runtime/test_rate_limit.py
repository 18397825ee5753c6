"""Per-client rate limits. In process (a fake clock): a burst passes, the next request waits for the
refill with the right Retry-After, another client is unaffected, and 10k distinct clients never hold
more than the cap of buckets nor grow memory past it. Against a real runtime process: a client over
its rate gets 429 with Retry-After over REST while a client from another source address gets 200,
the gRPC port refuses the same client with RESOURCE_EXHAUSTED and a retry-after trailer, and both
count in mlmodel_runtime_rate_limited_requests_total (and 429 in requests_total)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from mlmodel_runtime.server.errors import RateLimited
from mlmodel_runtime.server.grpc_service import peer_address
from mlmodel_runtime.server.oip import grpc_predict_v2_pb2 as pb
from mlmodel_runtime.server.oip import grpc_predict_v2_pb2_grpc as pb_grpc
from mlmodel_runtime.server.ratelimit import RateLimiter

from tests.runtime.conftest import Serve
from tests.runtime.models import json_body
from tests.support.clock import FakeMonotonic
from tests.support.ports import free_port

X = np.ones((1, 4), np.float32)


def test_a_burst_passes_then_the_rate_holds() -> None:
    clock = FakeMonotonic()
    limiter = RateLimiter(rate=2.0, burst=3, max_clients=10, clock=clock)
    assert [limiter.wait_s("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait_s("a") == pytest.approx(0.5)
    assert limiter.wait_s("b") == 0.0  # another client has its own bucket
    clock.now += 0.5
    assert limiter.wait_s("a") == 0.0
    assert limiter.wait_s("a") == pytest.approx(0.5)
    clock.now += 60  # a long pause refills to the burst, not beyond
    assert [limiter.wait_s("a") for _ in range(4)][-1] > 0


def test_refusal_carries_retry_after() -> None:
    limiter = RateLimiter(rate=0.25, burst=1, max_clients=10, clock=FakeMonotonic())
    limiter.admit("a")
    with pytest.raises(RateLimited, match=r"0.25 requests/s with a burst of 1 per client; retry in 4.00 s") as caught:
        limiter.admit("a")
    assert caught.value.headers == {"Retry-After": "4"}


def test_ten_thousand_clients_stay_within_the_cap() -> None:
    cap = 1000
    limiter = RateLimiter(rate=1.0, burst=1, max_clients=cap, clock=FakeMonotonic())
    tracemalloc.start()
    try:
        for i in range(cap):
            limiter.wait_s(f"10.0.{i // 256}.{i % 256}")
        at_cap, _ = tracemalloc.get_traced_memory()
        for i in range(10_000):
            limiter.wait_s(f"client-{i:05d}")
            assert len(limiter) <= cap
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(limiter) == cap
    assert after - at_cap < 64 * 1024, f"memory grew by {after - at_cap} bytes past the cap"
    assert limiter.wait_s("client-09999") > 0  # the most recent clients are the ones kept


@pytest.mark.parametrize(
    ("peer", "address"),
    [("ipv4:127.0.0.1:5000", "127.0.0.1"), ("ipv6:[::1]:5000", "::1"), ("unix:/tmp/s", "/tmp/s")],
)
def test_grpc_peer_addresses(peer: str, address: str) -> None:
    assert peer_address(peer) == address


def _post(source: str, port: int) -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=30) as client:
        return client.post(f"http://127.0.0.1:{port}/v2/models/mlp/infer", content=json_body({"input": X}))


def test_a_client_over_its_rate_gets_429_another_does_not(onnx_package: Path, serve: Serve) -> None:
    grpc_port = free_port()
    server = serve(onnx_package, grpc_port=grpc_port, rate_limit_rps=0.05, rate_limit_burst=2)
    assert [_post("127.0.0.1", server.port).status_code for _ in range(2)] == [200, 200]
    refused = _post("127.0.0.1", server.port)
    assert refused.status_code == 429, refused.text
    assert "rate limit exceeded" in refused.json()["error"]
    assert 1 <= int(refused.headers["retry-after"]) <= 20
    assert _post("127.0.0.2", server.port).status_code == 200  # another source address, its own bucket
    assert server.get("/v2/health/ready").status_code == 200  # health is never limited

    request = pb.ModelInferRequest(model_name="mlp", raw_input_contents=[X.tobytes()])
    request.inputs.add(name="input", datatype="FP32", shape=[1, 4])
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request, timeout=30)  # the same client (127.0.0.1): one bucket for both protocols
    error: Any = caught.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "rate limit exceeded" in error.details()
    assert dict(error.trailing_metadata())["retry-after"].isdigit()

    limited = "mlmodel_runtime_rate_limited_requests_total"
    assert server.metric(limited, model="mlp", protocol="rest") == 1
    assert server.metric(limited, model="mlp", protocol="grpc") == 1
    assert server.metric("mlmodel_runtime_requests_total", model="mlp", protocol="rest", code="429") == 1
    assert server.metric("mlmodel_runtime_requests_total", model="mlp", protocol="grpc", code="429") == 1
