#!/usr/bin/env python3
"""What model quality costs (issue 13), by hand, not part of the test suite. Every figure is printed with the
command behind it and as a ratio to a baseline measured in the same run (shared machines drift).

    .venv/bin/python bench/quality/run.py                       # every section (~5 min)
    .venv/bin/python bench/quality/run.py --only drift --seconds 8 --rounds 5
    .venv/bin/python bench/quality/run.py --only startup --repeats 5

Sections:
  drift    req/s, p50/p99 and the server's CPU per request of small JSON requests (batch 1 and 32 rows,
           16 connections) to one MLP runtime whose package has a drift baseline, with drift scoring on
           (every request sampled, scores every 10 s, and once more every second to make the scoring thread's
           share visible) and off (MLMODEL_DRIFT=false): ratios on/off. Variants interleaved over rounds, in a
           rotating order; medians. On a machine shared with other work these move by 10-20 % between runs:
           read them with the observe section.
  observe  the request path's share in-process, steadier than the above on a shared machine: the time of one
           DriftMonitor.observe (batch 1 and 32, the runtime's JSON-decoded tensors) over the server CPU a request
           costs with drift off (from the drift section, when it ran).
  profile  py-spy samples (200/s for 20 s: two scoring passes) of a drift-on runtime with the default settings
           under batch-1 load: the share of samples in the drift module (observe on the event loop, the scoring
           thread), the end-to-end view of the cost.
  startup  time from process start to /v2/health/startup 200 of a ~200 MB ONNX package (local directory,
           no download) with 3 examples of 8 rows and without: the seconds the examples add, and the
           runtime's own `examples_s`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from mlmodel_runtime.packing import QualityInputs, pack  # noqa: E402

from tests.runtime.process import log_lines, start_server  # noqa: E402
from tests.support.packages import make_onnx_mlp  # noqa: E402


def _script(path: Path, name: str) -> Any:
    """A sibling benchmark script as a module (their folder names are not importable)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HARDENING = _script(REPO / "bench" / "runtime-hardening" / "run.py", "hardening_bench")  # load(), small_request()
RUNTIME = _script(REPO / "bench" / "runtime" / "run.py", "runtime_bench")  # make_big_onnx()


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# ---------------------------------------------------------------- drift on vs off


def drift_package(root: Path) -> Path:
    rng = np.random.default_rng(1)
    np.save(root / "train.npy", rng.standard_normal((20_000, 4)))
    directory = root / "drift-pkg"
    directory.mkdir()
    make_onnx_mlp(directory / "model.onnx")
    pack(directory, name="mlp", version="1", quality=QualityInputs(baseline=root / "train.npy"))
    return directory


def run_drift(root: Path, seconds: float, rounds: int) -> list[dict[str, Any]]:
    package = drift_package(root)
    variants = {
        "off": {"drift": "false"},
        "on": {"drift": "true", "drift_interval_s": 10},
        "on-1s": {"drift": "true", "drift_interval_s": 1},
    }
    cases = [("batch1", 1, 16), ("batch32", 32, 16)]
    samples: dict[tuple[str, str], list[dict[str, float]]] = {}
    for round_ in range(rounds):
        for case, rows, conns in cases:
            order = list(variants.items())
            order = order[round_ % len(order):] + order[:round_ % len(order)]  # no variant always first
            for name, settings in order:
                server = start_server(str(package), root, **settings)
                try:
                    request = HARDENING.small_request(rows)
                    asyncio.run(HARDENING.load(server.port, request, conns, 0.5))  # warm-up, discarded
                    cpu = HARDENING.cpu_seconds(server.proc.pid)
                    figures = asyncio.run(HARDENING.load(server.port, request, conns, seconds))
                    figures["server_cpu_us_per_req"] = round(
                        1e6 * (HARDENING.cpu_seconds(server.proc.pid) - cpu) / (figures["req_s"] * figures["seconds"]),
                        1,
                    )
                    if name == "on-1s":  # the scoring thread really scored this traffic
                        window = server.metric("mlmodel_runtime_drift_window_rows", model="mlp")
                        assert window > 0, "no drift scores computed"
                    samples.setdefault((case, name), []).append(figures)
                finally:
                    server.stop()
    results = []
    for case, _, _ in cases:
        off = {k: statistics.median(r[k] for r in samples[(case, "off")]) for k in samples[(case, "off")][0]}
        for name in variants:
            runs = samples[(case, name)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            row = {
                "case": case, "variant": name, **med,
                "req_s_ratio": round(med["req_s"] / off["req_s"], 3),
                "p99_ratio": round(med["p99_ms"] / off["p99_ms"], 3),
                "cpu_per_req_ratio": round(med["server_cpu_us_per_req"] / off["server_cpu_us_per_req"], 3),
            }  # fmt: skip
            say(json.dumps(row))
            results.append(row)
    return results


# ---------------------------------------------------------------- start-up with examples


def run_observe(drift: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    import timeit

    from mlmodel_runtime.metrics import RuntimeMetrics
    from mlmodel_runtime.quality.baseline import Baseline, reference
    from mlmodel_runtime.quality.drift import DriftMonitor
    from prometheus_client import CollectorRegistry

    rng = np.random.default_rng(0)
    baseline = Baseline(
        tuple(reference(f"x{i}", "input", i, rng.standard_normal(5000), 10) for i in range(4)),
        tuple(reference(f"output[{i}]", "output", i, rng.standard_normal(5000), 10) for i in range(2)), 10,
    )  # fmt: skip
    monitor = DriftMonitor(baseline, RuntimeMetrics(CollectorRegistry()), "mlp", "1")
    results = []
    for case, rows in (("batch1", 1), ("batch32", 32)):
        inputs = {"input": rng.standard_normal((rows, 4)).astype(np.float32)}
        outputs = {"output": rng.standard_normal((rows, 2)).astype(np.float32)}
        number = 100_000
        def observe(i: dict[str, Any] = inputs, o: dict[str, Any] = outputs) -> None:
            monitor.observe(i, o)

        runs = [timeit.timeit(observe, number=number) / number for _ in range(5)]
        row: dict[str, Any] = {"case": case, "observe_us": round(1e6 * statistics.median(runs), 3)}
        off = next((r for r in drift or [] if r["case"] == case and r["variant"] == "off"), None)
        if off is not None:
            row["server_cpu_us_per_req_off"] = off["server_cpu_us_per_req"]
            row["share_of_request_cpu"] = round(row["observe_us"] / off["server_cpu_us_per_req"], 4)
        for _ in range(3):
            monitor.observe(inputs, outputs)
        row["update_ms"] = round(1000 * timeit.timeit(monitor.update, number=10) / 10, 2)
        say(f"observe {json.dumps(row)}")
        results.append(row)
    return results


def run_profile(root: Path) -> dict[str, Any]:
    package = drift_package(root) if not (root / "drift-pkg").exists() else root / "drift-pkg"
    spy_bin = Path(sys.executable).parent / "py-spy"
    out = root / "spy.txt"
    server = start_server(str(package), root, drift="true")  # the defaults: every request, scores every 10 s
    try:
        request = HARDENING.small_request(1)
        asyncio.run(HARDENING.load(server.port, request, 16, 0.5))
        cmd = [str(spy_bin), "record", "-d", "20", "-r", "200", "-f", "raw", "-o", str(out), "--pid",
               str(server.proc.pid), "--nonblocking"]
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        asyncio.run(HARDENING.load(server.port, request, 16, 21))
        spy.wait(60)
    finally:
        server.stop()
    total = in_observe = in_drift = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        in_drift += int(count) if "quality/drift.py" in stack else 0
        in_observe += int(count) if "DriftMonitor.observe" in stack else 0
    result = {"samples": total, "drift_share": round(in_drift / total, 4),
              "observe_share": round(in_observe / total, 4), "command": " ".join(cmd)}
    say(f"profile {json.dumps(result)}")
    return result


def big_examples(model: Path, path: Path, examples: int = 3, rows: int = 8) -> Path:
    """Examples for the big model: inputs from a seeded RNG, expected outputs from onnxruntime itself."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    items = []
    for i in range(examples):
        x = rng.standard_normal((rows, 1024)).astype(np.float32)
        (y,) = session.run(["output"], {"input": x})
        items.append({"name": f"example-{i}",
                      "inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape),
                                  "data": x.reshape(-1).tolist()}],
                      "outputs": [{"name": "output", "datatype": "FP32", "shape": list(y.shape),
                                   "data": y.reshape(-1).tolist()}]})  # fmt: skip
    path.write_text(json.dumps({"examples": items, "tolerance": {"default": {"abs": 1e-4, "rel": 1e-3}}}))
    return path


def time_to_started(package: Path, root: Path) -> tuple[float, float | None]:
    """Seconds from spawn to startup 200, and the runtime's `examples_s` (None without examples)."""
    began = time.perf_counter()
    server = start_server(str(package), root, model="big", wait=False)
    try:
        while True:
            if server.proc.poll() is not None:
                raise RuntimeError(f"runtime exited with {server.proc.returncode}:\n{server.logs()}")
            try:
                if httpx.get(f"{server.base_url}/v2/health/startup", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # poll
        took = time.perf_counter() - began
        ran = [r for r in log_lines(server.logs()) if r.get("message") == "examples passed"]
        return took, (float(ran[0]["examples_s"]) if ran else None)
    finally:
        server.stop()


def run_startup(root: Path, repeats: int) -> dict[str, Any]:
    plain = root / "big"
    plain.mkdir()
    say("startup: making a ~200 MB ONNX package")
    size = RUNTIME.make_big_onnx(plain / "model.onnx")
    pack(plain, name="big", version="1", format="onnx")
    checked = root / "big-examples"
    shutil.copytree(plain, checked)
    examples = big_examples(plain / "model.onnx", root / "big-examples.json")
    pack(checked, quality=QualityInputs(examples=examples))
    say(f"startup: model.onnx {size / 2**20:.1f} MiB; examples.json {(checked / 'examples.json').stat().st_size} B")
    without, with_, inside = [], [], []
    time_to_started(plain, root)  # warm-up, discarded: the model file into the page cache
    for _ in range(repeats):  # interleaved, so that both see the same page cache and machine load
        without.append(time_to_started(plain, root)[0])
        took, examples_s = time_to_started(checked, root)
        with_.append(took)
        if examples_s is not None:
            inside.append(examples_s)
    result = {
        "model_mib": round(size / 2**20, 1),
        "startup_s_without": round(statistics.median(without), 3),
        "startup_s_with_examples": round(statistics.median(with_), 3),
        "examples_s_in_runtime": round(statistics.median(inside), 3),
        "added_s": round(statistics.median(with_) - statistics.median(without), 3),
        "ratio": round(statistics.median(with_) / statistics.median(without), 3),
        "runs": {"without": [round(x, 3) for x in without], "with": [round(x, 3) for x in with_]},
    }
    say(f"startup {json.dumps(result)}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="drift,observe,profile,startup")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "last.json")
    args = parser.parse_args()
    print("  $ " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]), flush=True)
    only = set(args.only.split(","))
    results: dict[str, Any] = {"command": " ".join(sys.argv), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if "drift" in only:
            results["drift"] = run_drift(root, args.seconds, args.rounds)
        if "observe" in only:
            results["observe"] = run_observe(results.get("drift"))
        if "profile" in only:
            results["profile"] = run_profile(root)
        if "startup" in only:
            results["startup"] = run_startup(root, args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    say(f"wrote {args.out}")


if __name__ == "__main__":
    main()
