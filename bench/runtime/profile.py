#!/usr/bin/env python3
"""Where the runtime's time goes under load: CPU per thread and a py-spy profile, grouped.

    .venv/bin/python bench/runtime/profile.py [--case b1|b32|big] [--conns 16] [--seconds 8] [--batch 0]

Starts our runtime on the peers driver's model (packed as in serve_peer_models.py), loads it with wrk
like the driver does, samples it with py-spy (`record --format raw`, all threads, idle excluded) and
reads each thread's CPU time from /proc. Prints req/s, CPU cores per thread and per request, and the
share of samples by component.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import PEERS, PY, show_cmd, wait_http, wrk  # type: ignore[import-not-found]  # noqa: E402

GROUPS = [
    ("onnxruntime (Session.run)", ("onnxruntime",)),
    (
        "request decode (codec.decode_request, orjson, numpy)",
        ("decode_request", "from_json", "_decode_inputs", "_shape"),
    ),
    ("response encode (codec.encode_response)", ("encode_response",)),
    ("worker thread: queue, batching, hand-back", ("batching.py",)),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("our endpoint + data plane", ("endpoints.py", "dataplane.py")),
    ("starlette/fastapi middleware", ("starlette/", "fastapi/")),
    ("uvicorn HTTP protocol", ("uvicorn/",)),
    ("event loop internals (uvloop, C)", ("asyncio/runners.py",)),
]


def classify(frames: list[str]) -> str:
    """The group of the innermost frame that belongs to one (a sample's leaf first)."""
    for frame in reversed(frames):
        for group, needles in GROUPS:
            if any(needle in frame for needle in needles):
                return group
    return "other: " + frames[-1].split(" (")[0]


def thread_cpu(pid: int) -> dict[str, float]:
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        out[f"{task.name} {name}"] = (int(fields[11]) + int(fields[12])) / tick
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", choices=["b1", "b32", "big"], default="b1")
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--batch", type=int, default=0, help="MLMODEL_MAX_BATCH_SIZE")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlmodel-profile-"))
    subprocess.run([PY, str(PEERS / "gen_model.py"), str(work)], check=True, capture_output=True)
    big = a.case == "big"
    port = 19300
    cmd = [PY, str(HERE / "serve_peer_models.py"), "--model-dir", str(work), "--small-port", str(port),
           "--big-port", str(port + 1), "--small-batch", str(a.batch), "--big-batch", str(a.batch)]  # fmt: skip
    show_cmd(cmd)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        model = "mlp_big" if big else "mlp"
        url = f"http://127.0.0.1:{port + big}/v2/models/{model}/infer"
        wait_http(url.replace("/infer", "/ready"), 120)
        time.sleep(0.5)
        server = next(
            int(p) for p in os.listdir("/proc")
            if p.isdigit() and Path(f"/proc/{p}/cmdline").exists()
            and f"--model-name\0{model}\0".encode() in Path(f"/proc/{p}/cmdline").read_bytes()
        )  # fmt: skip
        body = work / ("body_big_b1.json" if big else f"body_{a.case}.json")
        wrk(url, a.conns, 2, body)  # warm-up
        profile = work / "profile.txt"
        spy = [str(Path(PY).parent / "py-spy"), "record", "-p", str(server), "-d", str(a.seconds - 2), "-r", "250",
               "-f", "raw", "-o", str(profile), "--nonblocking"]  # fmt: skip
        before = thread_cpu(server)
        loader = subprocess.Popen(
            ["wrk", "-t2", f"-c{a.conns}", f"-d{a.seconds}s", "-s", str(PEERS / "wrk_v2.lua"), url],
            env={**os.environ, "ANCHOR_BODY": str(body)},
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1)
        show_cmd(spy)
        subprocess.run(spy, check=True, capture_output=True)
        out, _ = loader.communicate()
        after = thread_cpu(server)
        rps = float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)

    print(f"\n{a.case} c{a.conns} batch={a.batch}: {rps:.0f} req/s")
    for name, cpu in sorted(after.items()):
        used = (cpu - before.get(name, 0.0)) / a.seconds
        if used > 0.01:
            print(f"  thread {name:28s} {used:5.2f} cores  {used / rps * 1e6:7.1f} us CPU per request")
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        counts[classify(stack.split(";"))] += int(count)
    print(f"\n  py-spy samples (non-idle, all threads): {total}")
    for group, n in counts.most_common(14):
        print(f"  {100 * n / total:5.1f}%  {group}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
