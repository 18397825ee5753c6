#!/usr/bin/env python3
"""Serve the peers driver's two ONNX MLPs with our runtime, as `run_anchors.py --extra-cmd` expects.

Packs $ANCHOR_MODEL_DIR/mlp.onnx and mlp_big.onnx into packages (`mlmodel pack`, in a temporary
directory), then runs one `python -m mlmodel_runtime serve` per model on 127.0.0.1 with the peers'
settings (onnxruntime intra-op threads 1, no per-request log) and waits; SIGTERM/SIGINT are passed
on to both servers, which drain and exit.

    python bench/runtime/serve_peer_models.py [--small-port 19000] [--big-port 19001]
        [--small-batch 0] [--big-batch 16] [--big-delay-ms 0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from mlmodel_runtime.packing import pack


def package(model_file: Path, name: str, root: Path) -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    shutil.copyfile(model_file, directory / "model.onnx")
    (directory / "README.md").write_text(f"# {name}\nThe peers benchmark's {model_file.name}.\n")
    pack(directory, name=name, version="1", format="onnx")
    return directory


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--model-dir", default=os.environ.get("ANCHOR_MODEL_DIR"), help="where mlp.onnx and mlp_big.onnx are"
    )
    ap.add_argument("--small-port", type=int, default=19000)
    ap.add_argument("--big-port", type=int, default=19001)
    ap.add_argument("--small-batch", type=int, default=0, help="MLMODEL_MAX_BATCH_SIZE for mlp (0: off, the default)")
    ap.add_argument("--small-delay-ms", type=float, default=0.0)
    ap.add_argument("--big-batch", type=int, default=16, help="MLMODEL_MAX_BATCH_SIZE for mlp_big")
    ap.add_argument("--big-delay-ms", type=float, default=0.0)
    a = ap.parse_args()
    if not a.model_dir:
        ap.error("--model-dir or ANCHOR_MODEL_DIR is required")
    root = Path(tempfile.mkdtemp(prefix="mlmodel-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, port, batch, delay in (
            ("mlp", a.small_port, a.small_batch, a.small_delay_ms),
            ("mlp_big", a.big_port, a.big_batch, a.big_delay_ms),
        ):
            env = dict(
                os.environ,
                MLMODEL_HOST="127.0.0.1",
                MLMODEL_METRICS_PORT="0",
                MLMODEL_INTRA_OP_THREADS="1",
                MLMODEL_MAX_BATCH_SIZE=str(batch),
                MLMODEL_MAX_BATCH_DELAY_MS=str(delay),
                MLMODEL_MODEL_DIR=str(root / "models"),
            )
            cmd = [
                sys.executable,
                "-m",
                "mlmodel_runtime",
                "serve",
                "--package",
                str(package(Path(a.model_dir) / f"{name}.onnx", name, root)),
                "--model-name",
                name,
                "--port",
                str(port),
            ]
            procs.append(subprocess.Popen(cmd, env=env))

        def forward(sig: int, _frame: object) -> None:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(sig)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        codes = [p.wait() for p in procs]
        return max(codes)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
