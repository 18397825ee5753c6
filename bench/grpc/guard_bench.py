#!/usr/bin/env python3
"""What authentication (on a cache hit) and the rate limiter cost, by hand or from `make bench`, not a test.

Two parts. In process: the time of one check on the request path (an API key check, a Kubernetes token
verdict from the cache, a rate-limit token) against the time of one request served (from the load
below). Under load: three runtimes serve the test MLP (no checks; a rate limit that never refuses;
API keys), loaded in turn in interleaved rounds with batch-1 binary REST requests by tritonclient's
asyncio client (bench/grpc/load.py); req/s and p99 and their ratios to the runtime without checks of
the same round (median over rounds). The client shares this machine's two cores with the server, so
the in-process figures are the sharper ones.

    .venv/bin/python bench/grpc/guard_bench.py [--seconds 8] [--rounds 3] [--conns 8]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from mlmodel_runtime.server.auth import ApiKeys, TokenReviewer  # noqa: E402
from mlmodel_runtime.server.ratelimit import RateLimiter  # noqa: E402

from tests.runtime.conftest import mlp_package  # noqa: E402
from tests.runtime.process import RuntimeServer, start_server  # noqa: E402

KEY = "bench-key-0123456789abcdef"


class AllowAll:
    def token_review(self, token: str) -> dict[str, Any]:
        return {"status": {"authenticated": True, "user": {"username": "system:serviceaccount:ns:bench"}}}

    def access_review(self, spec: dict[str, Any]) -> dict[str, Any]:
        return {"status": {"allowed": True}}


def per_call_us(check: Any, n: int = 200_000) -> float:
    async def run() -> float:
        started = time.perf_counter()
        for _ in range(n):
            await check()
        return (time.perf_counter() - started) / n * 1e6

    return asyncio.run(run())


def in_process(folder: Path) -> dict[str, float]:
    keys = ApiKeys(folder)
    reviewer = TokenReviewer(AllowAll(), "ns", "mlp")
    token = "eyJhbGciOiJSUzI1NiJ9." + "x" * 900 + ".sig"  # a ServiceAccount token is ~1 kB
    asyncio.run(reviewer.identify(token))
    limiter = RateLimiter(rate=1e9, burst=1_000_000, max_clients=10_000)

    async def limit() -> None:
        limiter.admit("10.0.0.1")

    return {
        "api key check": per_call_us(lambda: keys.identify(KEY)),
        "token check (cache hit)": per_call_us(lambda: reviewer.identify(token)),
        "rate limit token": per_call_us(limit),
    }


def load(port: int, conns: int, seconds: float, token: str | None) -> dict[str, float]:
    env = {**os.environ, **({"BENCH_TOKEN": token} if token else {})}
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "grpc" / "load.py"), "rest", str(port), "1", str(conns), str(seconds)],
        capture_output=True, text=True, timeout=seconds + 120, check=True, env=env,
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--conns", type=int, default=8)
    args = parser.parse_args()
    print("command:", " ".join([".venv/bin/python", "bench/grpc/guard_bench.py", *sys.argv[1:]]), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        keys = root / "keys"
        keys.mkdir()
        (keys / "bench").write_text(hashlib.sha256(KEY.encode()).hexdigest())
        micro = in_process(keys)
        package = str(mlp_package(root, "onnx"))
        configs: dict[str, tuple[dict[str, object], str | None]] = {
            "no checks": ({}, None),
            "rate limit": ({"rate_limit_rps": 1e9, "rate_limit_burst": 1_000_000}, None),
            "api keys": ({"auth": "apikeys", "auth_api_keys_dir": keys}, KEY),
        }
        servers: dict[str, RuntimeServer] = {}
        results: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
        try:
            for name, (settings, _) in configs.items():
                servers[name] = start_server(package, root, **settings)
            order = list(configs)
            for round_ in range(args.rounds):
                for name in order[round_ % 3:] + order[: round_ % 3]:  # each goes first in turn
                    token = configs[name][1]
                    figures = load(servers[name].port, args.conns, args.seconds, token)
                    results[name].append(figures)
                    print(f"[{time.strftime('%H:%M:%S')}] round {round_ + 1} {name}: {figures}", flush=True)
        finally:
            for server in servers.values():
                server.stop()
    base = results["no checks"]
    request_us = 1e6 / statistics.median(r["req_s"] for r in base)
    print(f"\nin process (one request takes {request_us:.0f} us of wall time at the load below):")
    for name, us in micro.items():
        print(f"  {name:26} {us:7.2f} us   {us / request_us:7.2%} of a request")
    print(f"\n{'':12} {'req/s':>9} {'ratio':>6} {'p99 ms':>8} {'ratio':>6} {'errors':>7}")
    for name, rounds in results.items():
        rps = statistics.median(r["req_s"] for r in rounds)
        p99 = statistics.median(r["p99_ms"] for r in rounds)
        rps_ratio = statistics.median(r["req_s"] / b["req_s"] for r, b in zip(rounds, base, strict=True))
        p99_ratio = statistics.median(r["p99_ms"] / b["p99_ms"] for r, b in zip(rounds, base, strict=True))
        errors = sum(r["errors"] for r in rounds)
        print(f"{name:12} {rps:9.1f} {rps_ratio:6.2f} {p99:8.2f} {p99_ratio:6.2f} {errors:7}")
    print("ratios: each runtime / the one without checks, same round (median over rounds)")


if __name__ == "__main__":
    main()
