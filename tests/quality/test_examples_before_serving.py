"""A real runtime process (`python -m mlmodel_runtime serve`) runs the package's examples after loading and
warm-up, before startup or readiness pass: a package whose model was swapped for one with other weights (same
files, valid manifest, new digest) never reports started, exits with code 17 (ExamplesMismatch), names the
example, the output and the largest difference in its error line and in the termination log the kubelet
reads; the right model passes its examples and serves."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx

from tests.quality.packages import package_with_examples, swap_weights
from tests.runtime.process import log_lines, start_server
from tests.support.waiting import wait_for


def test_the_right_model_passes_its_examples_then_serves(tmp_path: Path) -> None:
    server = start_server(str(package_with_examples(tmp_path, seed=0)), tmp_path)
    try:
        records = server.log_records()
        messages = [r["message"] for r in records]
        assert "examples passed" in messages
        assert messages.index("examples passed") > messages.index("model loaded")
        assert next(r for r in records if r["message"] == "examples passed")["examples"] == 1
        assert server.get("/v2/health/ready").status_code == 200
    finally:
        server.stop()


def test_a_swapped_model_fails_its_examples_and_never_starts(tmp_path: Path) -> None:
    swapped = swap_weights(package_with_examples(tmp_path, seed=0), tmp_path / "swapped", seed=1)
    termination_log = tmp_path / "termination-log"
    termination_log.write_text("")  # the kubelet creates it in a pod; the runtime never creates it
    server = start_server(str(swapped), tmp_path, wait=False, termination_message_path=termination_log)
    seen_started = False

    def exited() -> bool:
        nonlocal seen_started
        with contextlib.suppress(httpx.TransportError):
            seen_started |= server.get("/v2/health/startup").status_code == 200
        return server.proc.poll() is not None

    try:
        wait_for(exited, 120, "the runtime to exit")
        assert server.proc.returncode == 17, server.logs()
        assert not seen_started, "startup passed before the examples ran"
        errors = [r for r in log_lines(server.logs()) if r["level"] == "error"]
        assert len(errors) == 1, server.logs()
        assert errors[0]["reason"] == "ExamplesMismatch"
        assert errors[0]["exit_code"] == 17
        assert "example 'three-rows' output 'output': largest difference" in errors[0]["message"]
        said = termination_log.read_text()
        assert said.startswith("ExamplesMismatch: examples.json: example 'three-rows' output 'output'"), said
    finally:
        server.stop()
