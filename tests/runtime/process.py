"""A real runtime process for integration tests: `python -m mlmodel_runtime serve|fetch` on 127.0.0.1
with free ports, its JSON log in a file, and helpers to call it, read its metrics and stop it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.ports import free_port
from tests.support.waiting import wait_for

STARTUP_TIMEOUT = 120.0  # torch imports take a while on a busy 2-core machine


def runtime_env(settings: Mapping[str, object], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a runtime process: MLMODEL_* from `settings` (keys without the prefix)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLMODEL_", "AWS_"))}
    env.update({f"MLMODEL_{k.upper()}": str(v) for k, v in settings.items()})
    env.update(extra or {})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_fetch(
    package: str, model_dir: Path, env: Mapping[str, str] | None = None, *args: str
) -> subprocess.CompletedProcess[str]:
    """`python -m mlmodel_runtime fetch` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "mlmodel_runtime", "fetch", "--package", package, "--model-dir", str(model_dir), *args],
        env=runtime_env({}, env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def log_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of a runtime's output (every line must be JSON)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass
class RuntimeServer:
    """One `serve` process."""

    proc: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    log_path: Path
    model: str
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.base_url, timeout=60)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> httpx.Response:
        return self.client.get(path)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, **kwargs)

    def infer(self, body: bytes, headers: Mapping[str, str] | None = None, model: str | None = None) -> httpx.Response:
        return self.client.post(f"/v2/models/{model or self.model}/infer", content=body, headers=headers)

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"runtime exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                return self.get(f"/v2/models/{self.model}/ready").status_code == 200
            except httpx.TransportError:
                return False

        try:
            wait_for(ready, timeout, f"{self.model} to be ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- runtime log ---\n{self.logs()}") from None

    def metrics_text(self) -> str:
        port = self.metrics_port or self.port  # 0: /metrics is on the main port
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text

    def metric(self, name: str, **labels: str) -> float:
        """One sample's value (0.0 when absent), labels matched as given."""
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0

    def logs(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def log_records(self) -> list[dict[str, Any]]:
        return log_lines(self.logs())

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_server(
    package: str,
    log_dir: Path,
    *,
    model: str = "mlp",
    env: Mapping[str, str] | None = None,
    wait: bool = True,
    **settings: object,
) -> RuntimeServer:
    """Start `python -m mlmodel_runtime serve` on free loopback ports; wait until ready unless told not to."""
    port, metrics_port = free_port(), free_port()
    base: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "metrics_port": metrics_port,
        "model_dir": log_dir / f"models-{port}",
        "intra_op_threads": 1,
    }
    base.update(settings)
    log_path = log_dir / f"runtime-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlmodel_runtime", "serve", "--package", package, "--model-name", model],
            env=runtime_env(base, env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = RuntimeServer(proc, port, int(str(base["metrics_port"])), log_path, model)
    if wait:
        try:
            server.wait_ready()
        except BaseException:
            server.stop()
            raise
    return server
