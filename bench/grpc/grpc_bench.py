#!/usr/bin/env python3
"""gRPC vs REST (binary tensor data) on one runtime serving both, by hand or from `make bench`, not a test.

One runtime process serves the test MLP (ONNX, 4 inputs, 2 outputs) on both ports; tritonclient's
asyncio clients (bench/grpc/load.py, a process of their own) load it in turn, interleaved in rounds, at
batch 1 and batch 32 with CONNS concurrent requests. Figures: req/s and p99 for each, and gRPC's ratio
to REST of the same round (median over rounds). ghz is not available here, so the load is a bounded
Python loop, whose client costs share this machine's two cores with the server: the ratios compare the
protocols' whole path (client included), not the server alone.

    .venv/bin/python bench/grpc/grpc_bench.py [--seconds 8] [--rounds 2] [--conns 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.runtime.conftest import mlp_package  # noqa: E402
from tests.runtime.process import start_server  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

BATCHES = (1, 32)
PROTOCOLS = ("rest", "grpc")


def load(protocol: str, port: int, batch: int, conns: int, seconds: float) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "grpc" / "load.py"), protocol, str(port), str(batch), str(conns),
         str(seconds)],
        capture_output=True, text=True, timeout=seconds + 120, check=True,
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--conns", type=int, default=8)
    args = parser.parse_args()
    print("command:", " ".join([".venv/bin/python", "bench/grpc/grpc_bench.py", *sys.argv[1:]]), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        grpc_port = free_port()
        server = start_server(str(mlp_package(root, "onnx")), root, grpc_port=grpc_port)
        ports = {"rest": server.port, "grpc": grpc_port}
        results: dict[tuple[str, int], list[dict[str, float]]] = {}
        try:
            for round_ in range(args.rounds):
                for batch in BATCHES:
                    for protocol in PROTOCOLS:
                        figures = load(protocol, ports[protocol], batch, args.conns, args.seconds)
                        results.setdefault((protocol, batch), []).append(figures)
                        print(f"[{time.strftime('%H:%M:%S')}] round {round_ + 1} {protocol} batch {batch}: {figures}",
                              flush=True)
        finally:
            server.stop()
    print(f"\n{'':16} {'req/s':>9} {'ratio':>6} {'p99 ms':>8} {'ratio':>6} {'errors':>7}")
    for batch in BATCHES:
        rest = results["rest", batch]
        for protocol in PROTOCOLS:
            rounds = results[protocol, batch]
            rps = statistics.median(r["req_s"] for r in rounds)
            p99 = statistics.median(r["p99_ms"] for r in rounds)
            rps_ratio = statistics.median(r["req_s"] / b["req_s"] for r, b in zip(rounds, rest, strict=True))
            p99_ratio = statistics.median(r["p99_ms"] / b["p99_ms"] for r, b in zip(rounds, rest, strict=True))
            errors = sum(r["errors"] for r in rounds)
            name = f"{protocol} batch {batch}"
            print(f"{name:16} {rps:9.1f} {rps_ratio:6.2f} {p99:8.2f} {p99_ratio:6.2f} {errors:7}")
    print("ratios: gRPC / REST binary of the same round (median over rounds); > 1 req/s and < 1 p99 favour gRPC")


if __name__ == "__main__":
    main()
