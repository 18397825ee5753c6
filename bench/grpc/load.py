#!/usr/bin/env python3
"""One load run with tritonclient (asyncio clients), run as its own process by grpc_bench.py:

    .venv/bin/python bench/grpc/load.py PROTOCOL PORT BATCH CONCURRENCY SECONDS

PROTOCOL is `grpc` (tritonclient.grpc.aio, raw_input_contents) or `rest` (tritonclient.http.aio with
binary tensor data both ways). CONCURRENCY tasks send the same MLP request back to back for SECONDS
after a one-second warm-up (with `Authorization: Bearer $BENCH_TOKEN` when set); prints one JSON line:
req_s, p50_ms, p99_ms, errors. (tritonclient.grpc
registers the protocol's protobuf names, so it never shares a process with the runtime's stubs.)
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import numpy as np


async def run(protocol: str, port: int, batch: int, concurrency: int, seconds: float) -> dict[str, float]:
    x = np.random.default_rng(0).random((batch, 4), dtype=np.float32)
    if protocol == "grpc":
        import tritonclient.grpc.aio as client_mod

        client: Any = client_mod.InferenceServerClient(f"127.0.0.1:{port}")
        tensor = client_mod.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        outputs = [client_mod.InferRequestedOutput("output")]
    else:
        import tritonclient.http.aio as client_mod  # type: ignore[no-redef]

        client = client_mod.InferenceServerClient(f"127.0.0.1:{port}", conn_limit=concurrency)
        tensor = client_mod.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=True)
        outputs = [client_mod.InferRequestedOutput("output", binary_data=True)]
    token = os.environ.get("BENCH_TOKEN")
    headers = {"authorization": f"Bearer {token}"} if token else None
    latencies: list[float] = []
    errors = 0
    measuring = False
    stop_at = time.perf_counter() + 1.0 + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                result = await client.infer("mlp", [tensor], outputs=outputs, headers=headers)
                assert result.as_numpy("output").shape == (batch, 2)
            except Exception:
                errors += 1
                continue
            if measuring:
                latencies.append(time.perf_counter() - started)

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(1.0)  # warm-up: connections open, first requests answered
    measuring = True
    began = time.perf_counter()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    await client.close()
    latencies.sort()
    n = len(latencies)
    return {
        "req_s": round(n / elapsed, 1),
        "p50_ms": round(latencies[n // 2] * 1000, 2) if n else 0.0,
        "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 2) if n else 0.0,
        "errors": errors,
    }


if __name__ == "__main__":
    protocol, port, batch, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(asyncio.run(run(protocol, port, batch, concurrency, float(sys.argv[5])))))
