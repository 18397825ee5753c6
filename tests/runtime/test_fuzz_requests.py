"""Our own fuzz suite against two real runtimes (the MLP and the every-datatype echo model): a few
thousand seeded cases (valid requests interleaved with mutated JSON, byte-level edits, lying
binary headers and HTTP framing abuse, see fuzzing.py), replayed twice. No answer is a 5xx other
than 503 with Retry-After, every 4xx carries a JSON error, every valid request gets the right
outputs, and afterwards both servers are alive, ready and hold no more memory after the second,
identical pass than after the first. `bench/runtime-hardening/fuzz.py` runs longer and other seeds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.conftest import echo_package_in, mlp_package
from tests.runtime.fuzzing import run
from tests.runtime.process import RuntimeServer, start_server

SEED = 20261205
CASES = 1500  # per pass; two passes
RSS_GROWTH_LIMIT = 24 * 1024 * 1024


def rss(server: RuntimeServer) -> int:
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RuntimeServer]]:
    root = tmp_path_factory.mktemp("fuzz")
    echo = echo_package_in(root)
    started = {
        "mlp": start_server(str(mlp_package(root, "onnx")), root, max_request_bytes=1 << 20),
        "echo": start_server(str(echo), root, model="echo", max_request_bytes=1 << 20),
    }
    yield started
    for server in started.values():
        server.stop()


def test_no_request_gets_a_500_and_valid_ones_are_answered_right(servers: dict[str, RuntimeServer]) -> None:
    ports = {name: server.port for name, server in servers.items()}
    first = run(ports, SEED, CASES)
    after_first = {name: rss(server) for name, server in servers.items()}
    second = run(ports, SEED, CASES)
    after_second = {name: rss(server) for name, server in servers.items()}
    failures = first.failures + second.failures
    assert not failures, f"{len(failures)} bad answers, first ones:\n" + "\n".join(failures[:10])
    assert first.by_status == second.by_status  # the replay is the same run
    assert first.by_kind["valid"] > CASES // 10
    assert 200 in first.by_status
    assert 400 in first.by_status
    for name, server in servers.items():
        assert server.proc.poll() is None, f"{name} died"
        assert server.get(f"/v2/models/{name}/ready").status_code == 200
        growth = after_second[name] - after_first[name]
        assert growth < RSS_GROWTH_LIMIT, f"{name}: RSS grew {growth >> 20} MiB over an identical replay"
        assert server.metric("mlmodel_runtime_requests_total", code="500", model=name, revision="") == 0
        assert [r for r in server.log_records() if r["level"] in ("error", "critical")] == []
