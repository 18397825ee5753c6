#!/usr/bin/env python3
"""JSON body -> float32 tensor, in-process, one fresh process per method: time and peak RSS above the
body. `orjson` is the runtime's path (orjson.loads, then numpy); `simdjson` is pysimdjson's
`Array.as_buffer`, which fills a flat buffer of doubles without making a Python object per number
(measured when pysimdjson is importable, e.g. PYTHONPATH=/tmp/simdjson-probe after
`pip install --target /tmp/simdjson-probe pysimdjson`).

    .venv/bin/python bench/runtime-hardening/json_to_tensor.py [--mib 48]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import orjson


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def measure(method: str, mib: float) -> dict[str, object]:
    rows = int(mib * 2**20) // 44
    x = np.random.default_rng(0).random((rows, 4), dtype=np.float32)
    body = orjson.dumps(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows, 4], "data": x}]},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    del x
    before = rss_kib("VmRSS")
    started = time.perf_counter()
    if method == "orjson":
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "runtime"))
        from mlmodel_runtime.backends.base import Signature, TensorSpec
        from mlmodel_runtime.server.codec import decode_request

        signature = Signature(
            inputs=(TensorSpec("input", "FP32", (-1, 4)),), outputs=(TensorSpec("o", "FP32", (-1, 2)),)
        )
        tensor = decode_request(body, None, signature).inputs["input"]
    else:
        import simdjson

        document = simdjson.Parser().parse(body)
        data = document["inputs"][0]["data"]
        tensor = np.frombuffer(data.as_buffer(of_type="d"), np.float64).astype(np.float32).reshape(rows, 4)
    took = time.perf_counter() - started
    return {
        "method": method,
        "body_mib": round(len(body) / 2**20, 1),
        "seconds": round(took, 3),
        "peak_above_body_mib": (rss_kib("VmHWM") - before) // 1024,
        "rows": int(tensor.shape[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=float, default=48)
    parser.add_argument("--method")
    args = parser.parse_args()
    if args.method:
        print(json.dumps(measure(args.method, args.mib)))
        return
    print("  $ " + " ".join([sys.executable, *sys.argv]))
    for method in ("orjson", "simdjson"):
        run = subprocess.run(
            [sys.executable, __file__, "--mib", str(args.mib), "--method", method],
            capture_output=True,
            text=True,
            check=False,
        )
        print(run.stdout.strip() or f"{method}: {run.stderr.strip().splitlines()[-1]}")


if __name__ == "__main__":
    main()
