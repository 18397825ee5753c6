#!/usr/bin/env python3
"""Benchmark of the runtime (by hand, not part of the test suite). Prints every figure and the
command that produced it; writes JSON under bench/runtime/results/.

    .venv/bin/python bench/runtime/run.py --quick            # smoke run, a few minutes
    .venv/bin/python bench/runtime/run.py                    # full run (~20 min; keep the machine quiet)
    .venv/bin/python bench/runtime/run.py --only binary,startup

Sections:
  peers    the shared driver (/work/shared/bench/runtime-peers/run_anchors.py) serves the same two
           ONNX MLPs with MLServer and KServe and loads each with wrk; our runtime joins the same run
           (serve_peer_models.py: mlp without batching, mlp_big with dynamic batching). Ratios are
           taken against the best peer of the same run.
  binary   our runtime only: batch-32 rows/s with the binary tensor data extension (inputs and
           outputs) next to JSON, batch 1 binary, and the small model with dynamic batching on.
  startup  a ~200 MB ONNX package in the object store: process start -> ready (download, verify,
           load, warm-up) next to the raw time to download the same bytes with boto3 and create
           the onnxruntime session.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PEERS = Path(os.environ.get("PEERS_DIR", "/work/shared/bench/runtime-peers"))
RESULTS = HERE / "results"
PY = sys.executable


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def show_cmd(cmd: list[str] | str, env: dict[str, str] | None = None) -> str:
    text = cmd if isinstance(cmd, str) else " ".join(shlex.quote(c) for c in cmd)
    if env:
        text = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + text
    print(f"  $ {text}", flush=True)
    return text


def wait_http(url: str, timeout: float, body: bytes | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            request = urllib.request.Request(
                url, data=body, headers={"Content-Type": "application/json"} if body else {}
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} not ready after {timeout} s")
        time.sleep(0.05)


# ---------------------------------------------------------------- peers


def run_peers(quick: bool) -> dict[str, Any]:
    out = RESULTS / ("peers-quick.json" if quick else "peers.json")
    extra = f"{shlex.quote(PY)} {shlex.quote(str(HERE / 'serve_peer_models.py'))} --small-port 19000 --big-port 19001"
    cmd = [
        PY, str(PEERS / "run_anchors.py"), *(["--quick"] if quick else []), "--out", str(out),
        "--extra-url", "ours=http://127.0.0.1:19000/v2/models/mlp/infer",
        "--extra-big-url", "http://127.0.0.1:19001/v2/models/mlp_big/infer",
        "--extra-cmd", extra,
    ]  # fmt: skip
    say("peers: the shared driver with our runtime added")
    command = show_cmd(cmd)
    subprocess.run(cmd, check=True)
    results = json.loads(out.read_text())
    summary = compare_to_peers(results)
    summary["command"] = command
    return summary


def compare_to_peers(results: dict[str, Any]) -> dict[str, Any]:
    servers = results["servers"]
    ours = servers["ours"]["summary"]
    peers = {n: s["summary"] for n, s in servers.items() if n != "ours"}
    table: dict[str, Any] = {}
    print("\n  case          | ours rate  p99 ms | best peer            rate  p99 ms | ratio | p99 vs best peer")
    for case, mine in ours.items():
        rated = [(n, s[case]) for n, s in peers.items() if case in s]
        if not rated:
            continue
        key = "rows_per_s_mean" if case.startswith("b32") else "rps_mean"
        best_name, best = max(rated, key=lambda item: item[1][key])
        ratio = mine[key] / best[key]
        lowest_p99 = min(s["p99_ms_mean"] for _, s in rated)
        table[case] = {
            "ours": mine[key],
            "ours_p99_ms": mine["p99_ms_mean"],
            "best_peer": best_name,
            "best_peer_rate": best[key],
            "best_peer_p99_ms": best["p99_ms_mean"],
            "lowest_peer_p99_ms": lowest_p99,
            "ratio": round(ratio, 2),
            "unit": "rows/s" if key == "rows_per_s_mean" else "req/s",
            "non_2xx": mine["non_2xx_total"] + mine["socket_errors_total"],
        }
        print(
            f"  {case:13s} | {mine[key]:10.0f} {mine['p99_ms_mean']:6.2f} | {best_name:16s} {best[key]:10.0f} "
            f"{best['p99_ms_mean']:6.2f} | {ratio:5.2f}x | {mine['p99_ms_mean'] / best['p99_ms_mean']:.2f}x "
            f"(lowest peer p99 {lowest_p99:.2f})"
        )
    return {"cases": table, "verify_ok": servers["ours"].get("verify_all_ok")}


# ---------------------------------------------------------------- binary extension


def wrk(url: str, conns: int, seconds: int, body: Path, header_length: int | None = None) -> dict[str, Any]:
    script = HERE / "wrk_binary.lua" if header_length is not None else PEERS / "wrk_v2.lua"
    env = {"ANCHOR_BODY": str(body)}
    if header_length is not None:
        env["ANCHOR_HEADER_LENGTH"] = str(header_length)
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout=5s", "-s", str(script), url]
    command = show_cmd(cmd, env)
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, check=True)
    line = next(x for x in r.stdout.splitlines() if x.startswith("ANCHOR_JSON "))
    d: dict[str, Any] = json.loads(line.removeprefix("ANCHOR_JSON "))
    d["rps"] = d["requests"] / (d["duration_us"] / 1e6)
    d["command"] = command
    return d


def binary_bodies(model_dir: Path, work: Path) -> dict[str, tuple[Path, int]]:
    """Binary-extension twins of the driver's JSON bodies (same numbers), outputs binary too."""
    out = {}
    for tag in ("b1", "b32"):
        tensor = json.loads((model_dir / f"body_{tag}.json").read_text())["inputs"][0]
        raw = np.asarray(tensor["data"], dtype="<f4").tobytes()
        header = json.dumps(
            {
                "inputs": [{"name": tensor["name"], "shape": tensor["shape"], "datatype": "FP32",
                            "parameters": {"binary_data_size": len(raw)}}],
                "parameters": {"binary_data_output": True},
            }
        ).encode()  # fmt: skip
        path = work / f"body_{tag}.bin"
        path.write_bytes(header + raw)
        out[tag] = (path, len(header))
    return out


def run_binary(quick: bool) -> dict[str, Any]:
    seconds, rounds = (3, 1) if quick else (10, 3)
    work = Path(tempfile.mkdtemp(prefix="mlmodel-bench-bin-"))
    say("binary: generating the driver's models and bodies into " + str(work))
    subprocess.run([PY, str(PEERS / "gen_model.py"), str(work)], check=True, capture_output=True)
    bodies = binary_bodies(work, work)
    results: dict[str, list[dict[str, Any]]] = {}
    for variant, flags in (("default", []), ("small-batching", ["--small-batch", "32", "--small-delay-ms", "0"])):
        cmd = [PY, str(HERE / "serve_peer_models.py"), "--model-dir", str(work), "--small-port", "19100",
               "--big-port", "19101", *flags]  # fmt: skip
        say(f"binary: our runtime ({variant})")
        show_cmd(cmd)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            url = "http://127.0.0.1:19100/v2/models/mlp/infer"
            wait_http("http://127.0.0.1:19100/v2/models/mlp/ready", 120)
            wait_http("http://127.0.0.1:19101/v2/models/mlp_big/ready", 120)
            cases: list[tuple[str, int, Path, int | None]]
            if variant == "default":
                cases = [
                    ("b32_c16_json", 16, work / "body_b32.json", None),
                    ("b32_c16_binary", 16, *bodies["b32"]),
                    ("b1_c16_binary", 16, *bodies["b1"]),
                ]
            else:
                cases = [("b1_c16_json_batching", 16, work / "body_b1.json", None),
                         ("b1_c64_json_batching", 64, work / "body_b1.json", None)]  # fmt: skip
            wrk(url, 16, 2, work / "body_b1.json")  # warm-up, discarded
            for _ in range(rounds):
                for name, conns, body, header_length in cases:
                    results.setdefault(name, []).append(wrk(url, conns, seconds, body, header_length))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
    summary = {}
    print("\n  case                  |     req/s |     rows/s | p50 ms | p99 ms | non-2xx")
    for name, runs in results.items():
        rows = 32 if name.startswith("b32") else 1
        rps = statistics.mean(r["rps"] for r in runs)
        s = {
            "req_per_s": round(rps, 1),
            "rows_per_s": round(rps * rows, 1),
            "p50_ms": round(statistics.mean(r["p50_us"] for r in runs) / 1000, 2),
            "p99_ms": round(statistics.mean(r["p99_us"] for r in runs) / 1000, 2),
            "non_2xx": sum(r["non_2xx_3xx"] for r in runs),
            "rounds": [round(r["rps"], 1) for r in runs],
            "command": runs[0]["command"],
        }
        summary[name] = s
        print(
            f"  {name:21s} | {s['req_per_s']:9.0f} | {s['rows_per_s']:10.0f} | "
            f"{s['p50_ms']:6.2f} | {s['p99_ms']:6.2f} | {s['non_2xx']}"
        )
    return summary


# ---------------------------------------------------------------- start-up of a 200 MB package


def make_big_onnx(path: Path) -> int:
    """A ~200 MB MLP (1024 -> 8192 -> 5120 -> 512), random weights from a fixed seed."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    dims = [1024, 8192, 5120, 512]
    inits, nodes, prev = [], [], "input"
    for i in range(3):
        w = rng.standard_normal((dims[i], dims[i + 1]), dtype=np.float32) * np.float32(0.01)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        last = i == 2
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], ["output" if last else f"m{i}"]))
        if not last:
            nodes.append(helper.make_node("Relu", [f"m{i}"], [f"h{i}"]))
            prev = f"h{i}"
    graph = helper.make_graph(
        nodes, "big",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", dims[0]])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", dims[-1]])],
        inits,
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path.stat().st_size


def object_store_env() -> dict[str, str]:
    if os.environ.get("AWS_ENDPOINT_URL"):
        return {
            k: os.environ[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")
        }
    sys.path.insert(0, str(REPO))
    from hack.localcluster.layout import Layout, read_env_file

    env_file = Layout.default().objectstore_env
    if not env_file.exists():
        raise SystemExit(
            "no object store: start one with `.venv/bin/python -m hack.localcluster up --only objectstore`"
        )
    return dict(read_env_file(env_file))


def run_startup(quick: bool) -> dict[str, Any]:
    import boto3
    from boto3.s3.transfer import TransferConfig
    from mlmodel_runtime.packing import pack

    repeats = 2 if quick else 3
    env = object_store_env()
    work = Path(tempfile.mkdtemp(prefix="mlmodel-bench-start-"))
    pkg = work / "big"
    pkg.mkdir()
    say("startup: making a ~200 MB ONNX package")
    size = make_big_onnx(pkg / "model.onnx")
    (pkg / "README.md").write_text("# big\n")
    pack(pkg, name="big", version="1", format="onnx")
    s3 = boto3.client(
        "s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"],
    )  # fmt: skip
    bucket = f"bench-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    for f in sorted(pkg.iterdir(), key=lambda p: p.name == "deployment_manifest.json"):
        s3.upload_file(str(f), bucket, f"big/{f.name}")
    uri = f"s3://{bucket}/big/"
    total = sum(f.stat().st_size for f in pkg.iterdir())
    say(f"startup: {uri} holds {total / 2**20:.1f} MiB ({size / 2**20:.1f} MiB model.onnx)")

    raw_runs, ours_runs = [], []
    config = TransferConfig(multipart_threshold=16 * 2**20, multipart_chunksize=16 * 2**20, max_concurrency=8)
    import onnxruntime as ort

    for i in range(repeats):
        # raw: boto3's managed (multipart, 8 threads) download of model.onnx, then the session
        dest = work / f"raw-{i}.onnx"
        t0 = time.perf_counter()
        s3.download_file(bucket, "big/model.onnx", str(dest), Config=config)
        t1 = time.perf_counter()
        digest = hashlib.sha256()
        with dest.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        t2 = time.perf_counter()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(dest), options, providers=["CPUExecutionProvider"])
        t3 = time.perf_counter()
        del session
        dest.unlink()
        raw_runs.append(
            {
                "download_s": t1 - t0,
                "sha256_s": t2 - t1,
                "session_s": t3 - t2,
                "download_plus_session_s": (t1 - t0) + (t3 - t2),
            }
        )

        # ours: process start -> /v2/models/big/ready, fresh model dir each time
        run_env = {
            **os.environ,
            **env,
            "MLMODEL_HOST": "127.0.0.1",
            "MLMODEL_PORT": "19200",
            "MLMODEL_METRICS_PORT": "0",
            "MLMODEL_MODEL_DIR": str(work / f"models-{i}"),
            "MLMODEL_INTRA_OP_THREADS": "1",
        }
        cmd = [PY, "-m", "mlmodel_runtime", "serve", "--package", uri, "--model-name", "big"]
        if i == 0:
            show_cmd(cmd, {k: v for k, v in run_env.items() if k.startswith("MLMODEL_")})
        log_path = work / f"serve-{i}.log"
        with log_path.open("wb") as log:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, env=run_env, stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_http("http://127.0.0.1:19200/v2/models/big/ready", 300)
                ready = time.perf_counter() - t0
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
        records = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
        by_message = {r["message"]: r for r in records}
        ours_runs.append({
            "start_to_ready_s": ready,
            "fetch_s": by_message["package verified"]["fetch_s"],
            "load_s": by_message["model loaded"]["load_s"],
            "warmup_s": by_message["model loaded"]["warmup_s"],
            "download_log": [r for r in records if r["message"] == "downloading"][-1:],
        })  # fmt: skip
        say(f"startup run {i + 1}: ours {ready:.2f} s to ready; raw download {raw_runs[-1]['download_s']:.2f} s "
            f"+ session {raw_runs[-1]['session_s']:.2f} s")  # fmt: skip

    def mean(runs: list[dict[str, Any]], key: str) -> float:
        return round(float(statistics.mean(r[key] for r in runs)), 3)

    summary = {
        "package_mib": round(total / 2**20, 1),
        "ours_start_to_ready_s": mean(ours_runs, "start_to_ready_s"),
        "ours_fetch_and_verify_s": mean(ours_runs, "fetch_s"),
        "ours_load_s": mean(ours_runs, "load_s"),
        "ours_warmup_s": mean(ours_runs, "warmup_s"),
        "raw_download_s": mean(raw_runs, "download_s"),
        "raw_sha256_s": mean(raw_runs, "sha256_s"),
        "raw_session_s": mean(raw_runs, "session_s"),
        "raw_download_plus_session_s": mean(raw_runs, "download_plus_session_s"),
        "runs": {"ours": ours_runs, "raw": raw_runs},
    }
    print(
        f"\n  {summary['package_mib']} MiB package: ours start->ready {summary['ours_start_to_ready_s']} s "
        f"(fetch+verify {summary['ours_fetch_and_verify_s']} s, load {summary['ours_load_s']} s, "
        f"warm-up {summary['ours_warmup_s']} s, rest = interpreter and imports)\n"
        f"  raw: download {summary['raw_download_s']} s + session {summary['raw_session_s']} s = "
        f"{summary['raw_download_plus_session_s']} s (sha256 of the file alone: {summary['raw_sha256_s']} s)"
    )
    for key in list(s3.list_objects_v2(Bucket=bucket).get("Contents", [])):
        s3.delete_object(Bucket=bucket, Key=key["Key"])
    s3.delete_bucket(Bucket=bucket)
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short loads, one round")
    ap.add_argument("--only", default="peers,binary,startup", help="comma-separated sections")
    a = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    say(f"load average before: {os.getloadavg()}")
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "quick": a.quick, "nproc": os.cpu_count(),
                           "command": " ".join(shlex.quote(x) for x in [PY, *sys.argv])}  # fmt: skip
    sections = {"peers": run_peers, "binary": run_binary, "startup": run_startup}
    for name in a.only.split(","):
        out[name] = sections[name.strip()](a.quick)
    out["loadavg_after"] = os.getloadavg()
    path = RESULTS / ("summary-quick.json" if a.quick else "summary.json")
    path.write_text(json.dumps(out, indent=1, default=str))
    say(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
