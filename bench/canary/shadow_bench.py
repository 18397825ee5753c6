#!/usr/bin/env python3
"""The cost of shadow traffic to the stable revision (issue 12), by hand or from `make bench`, not a test.

Four stable runtimes serve the same MLP: without shadow traffic (the baseline), and copying 0%, 10% and 100%
of their requests to one candidate runtime (the same weights, so every copy is compared in full). Each is
loaded in turn, in interleaved rounds, with batch-1 JSON requests over 16 keep-alive connections; the
figures are req/s and p99 and their ratios to the baseline of the same round (median over rounds). On this
2-core machine the candidate shares the CPUs with the stable runtime: the 100% figure includes the
candidate's own work, which a cluster runs on another node.

    .venv/bin/python bench/canary/shadow_bench.py [--seconds 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.runtime.conftest import mlp_package  # noqa: E402
from tests.runtime.process import RuntimeServer, start_server  # noqa: E402

_spec = importlib.util.spec_from_file_location("hardening", REPO / "bench" / "runtime-hardening" / "run.py")
assert _spec is not None
assert _spec.loader is not None
hardening = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hardening)

SHARES = {"no shadow": None, "shadow 0%": 0.0, "shadow 10%": 10.0, "shadow 100%": 100.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--conns", type=int, default=16)
    args = parser.parse_args()
    print("command:", " ".join([".venv/bin/python", "bench/canary/shadow_bench.py", *sys.argv[1:]]), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        package = str(mlp_package(root, "onnx"))
        servers: list[RuntimeServer] = []
        try:
            candidate = start_server(package, root, model_revision="2")
            servers.append(candidate)
            stables: dict[str, RuntimeServer] = {}
            for label, share in SHARES.items():
                settings: dict[str, object] = {"model_revision": "1"}
                if share is not None:
                    settings |= {"shadow_url": candidate.base_url, "shadow_percent": share, "shadow_revision": "2"}
                stables[label] = start_server(package, root, **settings)
                servers.append(stables[label])
            request = hardening.small_request(1)
            results: dict[str, list[dict[str, float]]] = {label: [] for label in SHARES}
            for round_ in range(args.rounds):
                for label, server in stables.items():
                    figures = asyncio.run(hardening.load(server.port, request, args.conns, args.seconds))
                    results[label].append(figures)
                    print(f"[{time.strftime('%H:%M:%S')}] round {round_ + 1} {label}: {figures}", flush=True)
            report(results, stables)
        finally:
            for server in servers:
                server.stop()


def report(results: dict[str, list[dict[str, float]]], stables: dict[str, RuntimeServer]) -> None:
    base = results["no shadow"]
    print(f"\n{'':12} {'req/s':>9} {'ratio':>6} {'p99 ms':>8} {'ratio':>6}  copies (agree/disagree/error/dropped)")
    for label, rounds in results.items():
        rps = statistics.median(r["req_s"] for r in rounds)
        p99 = statistics.median(r["p99_ms"] for r in rounds)
        rps_ratio = statistics.median(r["req_s"] / b["req_s"] for r, b in zip(rounds, base, strict=True))
        p99_ratio = statistics.median(r["p99_ms"] / b["p99_ms"] for r, b in zip(rounds, base, strict=True))
        copies: Any = "-"
        if label != "no shadow":
            server = stables[label]
            copies = "/".join(f"{server.metric('mlmodel_runtime_shadow_requests_total', result=r):.0f}"
                              for r in ("agree", "disagree", "error", "dropped"))
        print(f"{label:12} {rps:9.1f} {rps_ratio:6.3f} {p99:8.2f} {p99_ratio:6.3f}  {copies}")


if __name__ == "__main__":
    main()
