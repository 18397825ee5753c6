#!/usr/bin/env python3
"""Benchmarks of the runtime's hardening (issue 10), by hand, not part of the test suite. Every
figure is printed with the command behind it and compared with a baseline measured in the same run:
the runtime as of `--baseline` (a git revision, default the commit before the hardening), served
from a copy of that revision's runtime/ put first on PYTHONPATH.

    .venv/bin/python bench/runtime-hardening/run.py                  # everything (~15 min)
    .venv/bin/python bench/runtime-hardening/run.py --only memory --clients 4,16,48
    .venv/bin/python bench/runtime-hardening/run.py --only fuzz --cases 20000 --seed 7

Sections:
  memory      peak RSS of one MLP runtime while N clients each send one 48 MiB JSON request at
              once (a client answered 503 retries after Retry-After), baseline vs now (default
              budget, and a 256 MiB budget); the wall time until every client has its answer.
  throughput  req/s of small requests (batch 1 and 32, JSON, 16 connections), baseline vs now:
              the cost of the byte budget and the stricter parsing at normal sizes.
  latency     p50/p99 of batch-1 requests at 1 and 16 connections with dynamic batching on
              (max 16 rows; delay 0 and 2 ms), baseline vs now (item 5: results held for the next batch).
  fuzz        the fuzz suite's cases (tests/runtime/fuzzing.py) for longer and other seeds, against
              now and the baseline: answers by status, 5xx count, RSS after two identical passes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.runtime.conftest import echo_package_in, mlp_package  # noqa: E402
from tests.runtime.fuzzing import run as fuzz_run  # noqa: E402
from tests.runtime.process import RuntimeServer, start_server  # noqa: E402

MiB = 1024 * 1024
DEFAULT_BASELINE = "455ae0b"


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def baseline_tree(revision: str, work: Path) -> Path:
    """runtime/ of `revision` in `work`, for PYTHONPATH."""
    subprocess.run(
        f"git archive {shlex.quote(revision)} runtime | tar -x -C {shlex.quote(str(work))}",
        shell=True,
        check=True,
        cwd=REPO,
    )
    return work / "runtime"


class Variant:
    """A runtime to measure: its name and the environment that selects its code."""

    def __init__(
        self, name: str, pythonpath: Path | None, env: dict[str, str] | None = None, **settings: object
    ) -> None:
        self.name = name
        self.env = {"PYTHONPATH": str(pythonpath)} if pythonpath else {}
        self.env.update(env or {})
        self.settings = settings

    def start(self, package: Path, root: Path, model: str = "mlp", **settings: object) -> RuntimeServer:
        return start_server(str(package), root, model=model, env=self.env, **{**self.settings, **settings})


def status_of(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


# ---------------------------------------------------------------- a small asyncio HTTP client


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, dict[str, str], bytes]:
    writer.write(request)
    await writer.drain()
    top = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = top.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


def post(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# ---------------------------------------------------------------- memory


def big_body(target: int) -> bytes:
    rows = target // 44  # orjson writes a float32 in ~10 characters: ~44 bytes a row of 4
    x = np.random.default_rng(0).random((rows, 4), dtype=np.float32)
    return orjson.dumps(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows, 4], "data": x}]},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


async def flood(port: int, request: bytes, clients: int) -> dict[str, Any]:
    """`clients` connections each send `request` at once; a 503 is retried after its Retry-After."""
    statuses: dict[int, int] = {}

    async def one() -> None:
        while True:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=256 * MiB)
            try:
                status, headers, _ = await exchange(reader, writer, request)
            except (ConnectionError, asyncio.IncompleteReadError):
                status, headers = 0, {}
            finally:
                writer.close()
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                return
            if status not in (0, 503):
                raise RuntimeError(f"unexpected {status}")
            await asyncio.sleep(float(headers.get("retry-after", "1")))  # what a client does on 503

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(clients)))
    return {"seconds": round(time.perf_counter() - started, 2), "answers": statuses}


def watch_rss(pid: int, stop: threading.Event, peak: list[int]) -> None:
    while not stop.wait(0.02):  # poll
        try:
            peak[0] = max(peak[0], status_of(pid)["VmRSS"])
        except (FileNotFoundError, KeyError):
            return


def run_memory(
    variants: list[Variant], clients: list[int], size: int, root: Path, package: Path
) -> list[dict[str, Any]]:
    request = post("/v2/models/mlp/infer", big_body(size))
    say(f"memory: one request is {len(request) / MiB:.1f} MiB of JSON")
    results = []
    for n in clients:
        for variant in variants:
            server = variant.start(package, root)
            try:
                idle = status_of(server.proc.pid)["VmRSS"]
                stop, peak = threading.Event(), [idle]
                watcher = threading.Thread(target=watch_rss, args=(server.proc.pid, stop, peak))
                watcher.start()
                outcome = asyncio.run(flood(server.port, request, n))
                stop.set()
                watcher.join()
                hwm = status_of(server.proc.pid)["VmHWM"]
            finally:
                server.stop()
            row = {
                "variant": variant.name,
                "clients": n,
                "idle_mib": idle // MiB,
                "peak_rss_mib": max(peak[0], hwm) // MiB,
                **outcome,
            }
            say(f"memory {json.dumps(row)}")
            results.append(row)
    return results


# ---------------------------------------------------------------- throughput and latency


async def load(port: int, request: bytes, conns: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                status, _, _ = await exchange(reader, writer, request)
                if status != 200:
                    raise RuntimeError(f"status {status}")
                latencies.append(time.perf_counter() - started)
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(conns)))
    took = time.perf_counter() - began
    latencies.sort()
    return {
        "seconds": took,
        "req_s": round(len(latencies) / took, 1),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 3),
        "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 3),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def small_request(rows: int) -> bytes:
    x = (np.arange(rows * 4, dtype=np.float32) / 7).reshape(rows, 4)
    body = json.dumps(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows, 4], "data": x.reshape(-1).tolist()}]}
    )
    return post("/v2/models/mlp/infer", body.encode())


def compare(
    variants: list[Variant],
    root: Path,
    package: Path,
    cases: list[tuple[str, dict[str, object], int, int]],
    seconds: float,
    rounds: int,
) -> list[dict[str, Any]]:
    """Each case (name, settings, rows, connections) on each variant, interleaved over `rounds`; medians."""
    samples: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(rounds):
        for case, settings, rows, conns in cases:
            for variant in variants:
                server = variant.start(package, root, **settings)
                try:
                    request = small_request(rows)
                    asyncio.run(load(server.port, request, conns, 0.5))  # warm-up, discarded
                    cpu = cpu_seconds(server.proc.pid)
                    figures = asyncio.run(load(server.port, request, conns, seconds))
                    # server CPU per request: steadier than req/s on a machine shared with other work
                    figures["server_cpu_us_per_req"] = round(
                        1e6 * (cpu_seconds(server.proc.pid) - cpu) / (figures["req_s"] * figures["seconds"]), 1
                    )
                    samples.setdefault((case, variant.name), []).append(figures)
                finally:
                    server.stop()
    results = []
    for (case, name), runs in samples.items():
        row = {"case": case, "variant": name, **{k: statistics.median(r[k] for r in runs) for k in runs[0]}}
        say(f"{json.dumps(row)}")
        results.append(row)
    return results


# ---------------------------------------------------------------- fuzz


def run_fuzz(variants: list[Variant], root: Path, mlp: Path, seed: int, count: int) -> list[dict[str, Any]]:
    echo = echo_package_in(root)
    results = []
    for variant in variants:
        servers = {
            "mlp": variant.start(mlp, root, max_request_bytes=MiB),
            "echo": variant.start(echo, root, model="echo", max_request_bytes=MiB),
        }
        try:
            ports = {name: s.port for name, s in servers.items()}
            started = time.perf_counter()
            first = fuzz_run(ports, seed, count)
            rss1 = {n: status_of(s.proc.pid)["VmRSS"] for n, s in servers.items()}
            second = fuzz_run(ports, seed, count)
            rss2 = {n: status_of(s.proc.pid)["VmRSS"] for n, s in servers.items()}
            alive = all(s.proc.poll() is None for s in servers.values())
        finally:
            for s in servers.values():
                s.stop()
        answers: dict[int, int] = {}
        for outcome in (first, second):
            for status, k in outcome.by_status.items():
                answers[status] = answers.get(status, 0) + k
        row = {
            "variant": variant.name,
            "seed": seed,
            "cases": first.cases + second.cases,
            "seconds": round(time.perf_counter() - started, 1),
            "by_kind": first.by_kind,
            "answers": dict(sorted(answers.items())),
            "5xx": sum(k for s, k in answers.items() if s >= 500),
            "bad_answers": len(first.failures) + len(second.failures),
            "alive": alive,
            "rss_growth_second_pass_kib": {n: (rss2[n] - rss1[n]) // 1024 for n in rss1},
            "first_bad_answers": [f[:300] for f in (first.failures + second.failures)[:5]],
        }
        say(f"fuzz {json.dumps(row)}")
        results.append(row)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="memory,throughput,latency,fuzz")
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision to compare with")
    parser.add_argument("--clients", default="4,16,48")
    parser.add_argument("--memory-variants", default="base,now,tight", help="of base,now,tight,fixed,patient")
    parser.add_argument("--size-mib", type=float, default=48)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", type=int, default=5000, help="fuzz cases per pass (two passes)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "last.json")
    args = parser.parse_args()
    print("  $ " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]), flush=True)
    only = set(args.only.split(","))
    results: dict[str, Any] = {"command": " ".join(sys.argv), "baseline": args.baseline, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = Variant(f"baseline {args.baseline}", baseline_tree(args.baseline, root))
        now = Variant("now", None)
        package = mlp_package(root, "onnx")
        if "memory" in only:
            tight = Variant("now, budget 256 MiB", None, request_budget_bytes=256 * MiB)
            # glibc raises its mmap threshold after large frees, so freed tensors may stay in the heap
            fixed = Variant(
                "now, budget 256 MiB, MALLOC_MMAP_THRESHOLD_=1MiB",
                None,
                {"MALLOC_MMAP_THRESHOLD_": str(MiB)},
                request_budget_bytes=256 * MiB,
            )
            patient = Variant("now, wait 5 s", None, request_budget_wait_ms=5000)
            variants = {"base": base, "now": now, "tight": tight, "fixed": fixed, "patient": patient}
            chosen = [variants[v] for v in args.memory_variants.split(",")]
            clients = [int(c) for c in args.clients.split(",")]
            results["memory"] = run_memory(chosen, clients, int(args.size_mib * MiB), root, package)
        if "throughput" in only:
            results["throughput"] = compare(
                [base, now],
                root,
                package,
                [("batch 1, 16 conns", {}, 1, 16), ("batch 32, 16 conns", {}, 32, 16)],
                args.seconds,
                args.rounds,
            )
        if "latency" in only:
            batching = [{"max_batch_size": 16, "max_batch_delay_ms": delay} for delay in (0, 2)]
            results["latency"] = compare(
                [base, now],
                root,
                package,
                [
                    ("batching delay 0, c1", batching[0], 1, 1),
                    ("batching delay 0, c16", batching[0], 1, 16),
                    ("batching delay 2 ms, c1", batching[1], 1, 1),
                    ("batching delay 2 ms, c16", batching[1], 1, 16),
                ],
                args.seconds,
                args.rounds,
            )
        if "fuzz" in only:
            results["fuzz"] = run_fuzz([now, base], root, package, args.seed, args.cases)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    say(f"wrote {args.out}")


if __name__ == "__main__":
    main()
