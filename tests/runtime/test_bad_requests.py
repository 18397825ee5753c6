"""Whatever a client sends, a real runtime answers with a 4xx and a message naming the tensor and
what was expected, never a 500, and keeps serving: malformed JSON, unknown/missing inputs, wrong
datatype, rank, dimension or data length, non-numeric data, lying binary headers, bodies over the
limit (413, also chunked and decompressed), unknown models and versions (404), bad methods and
encodings; /metrics counts the requests by status code."""

from __future__ import annotations

import gzip
import json
import socket
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.runtime.conftest import mlp_package
from tests.runtime.models import binary_body, json_body
from tests.runtime.process import RuntimeServer, start_server
from tests.support.packages import reference_mlp
from tests.support.waiting import wait_for

LIMIT = 64 * 1024
GOOD = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeServer]:
    root = tmp_path_factory.mktemp("bad-requests")
    server = start_server(str(mlp_package(root, "onnx")), root, max_request_bytes=LIMIT, model_revision="2")
    yield server
    server.stop()


def inputs(*tensors: dict[str, Any]) -> bytes:
    return json.dumps({"inputs": list(tensors)}).encode()


def lying_binary(declared: int, sent: int, header_length_delta: int = 0) -> tuple[bytes, dict[str, str]]:
    header = json.dumps(
        {
            "inputs": [
                {"name": "input", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": declared}}
            ]
        }
    ).encode()
    body = header + b"\0" * sent
    return body, {"Inference-Header-Content-Length": str(len(header) + header_length_delta)}


CASES: list[tuple[str, bytes, dict[str, str], str]] = [
    ("malformed-json", b'{"inputs": [', {}, "malformed JSON in request"),
    ("not-an-object", b"[]", {}, "request must be a JSON object, found array"),
    ("no-inputs", b"{}", {}, "request 'inputs' must be a non-empty list"),
    ("unknown-input", inputs({**GOOD, "name": "x"}), {}, "unknown input 'x'; the model takes 'input' (FP32 [-1, 4])"),
    (
        "wrong-datatype",
        inputs({**GOOD, "datatype": "INT32", "data": [1, 2, 3, 4]}),
        {},
        'datatype "INT32", expected FP32',
    ),
    ("wrong-rank", inputs({**GOOD, "shape": [4]}), {}, "input 'input': shape [4], expected [-1, 4]"),
    ("wrong-dimension", inputs({**GOOD, "shape": [1, 3], "data": [1, 2, 3]}), {}, "shape [1, 3], expected [-1, 4]"),
    ("length-mismatch", inputs({**GOOD, "shape": [2, 4]}), {}, "input 'input': 4 values for shape [2, 4] (8 expected)"),
    ("non-numeric", inputs({**GOOD, "data": [1, "two", 3, 4]}), {}, "input 'input': data must be numbers for FP32"),
    ("ragged", inputs({**GOOD, "data": [[1, 2], [3]]}), {}, "data is not a regular array of numbers"),
    ("no-data", inputs({k: v for k, v in GOOD.items() if k != "data"}), {}, "has neither 'data' nor"),
    ("unknown-output", json.dumps({"inputs": [GOOD], "outputs": [{"name": "y"}]}).encode(), {}, "unknown output 'y'"),
    ("header-past-body", *lying_binary(16, 16, header_length_delta=100), "Inference-Header-Content-Length is"),
    (
        "header-not-a-number",
        inputs(GOOD),
        {"Inference-Header-Content-Length": "ten"},
        'must be a decimal integer of at most 20 digits, got "ten"',
    ),
    ("binary-size-past-body", *lying_binary(16, 8), "binary_data_size 16 runs past the end of the body"),
    ("binary-size-wrong", *lying_binary(12, 12), "binary_data_size 12 bytes, expected 16 for FP32 [1, 4]"),
    ("binary-extra-bytes", *lying_binary(16, 20), "carries 20 bytes after the JSON header"),
    ("bad-gzip", b"not gzip", {"Content-Encoding": "gzip"}, "body is not valid gzip data"),
]


@pytest.mark.parametrize(("case", "body", "headers", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_400_with_a_clear_message(
    server: RuntimeServer, case: str, body: bytes, headers: dict[str, str], message: str
) -> None:
    response = server.infer(body, headers)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_bodies_over_the_limit_get_413(server: RuntimeServer) -> None:
    big = json_body({"input": np.zeros((LIMIT // 8, 4), np.float32)})
    assert len(big) > LIMIT
    response = server.infer(big)
    assert response.status_code == 413
    assert f"over the limit of {LIMIT} bytes" in response.json()["error"]
    chunked = server.client.post("/v2/models/mlp/infer", content=iter([big[:40000], big[40000:]]))
    assert "content-length" not in chunked.request.headers
    assert chunked.status_code == 413
    bomb = gzip.compress(b" " * (LIMIT * 4))
    unzipped = server.infer(bomb, {"Content-Encoding": "gzip"})
    assert unzipped.status_code == 413
    assert "decompressed request body is over the limit" in unzipped.json()["error"]


def test_compressed_bodies_are_accepted(server: RuntimeServer) -> None:
    x = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    for encoding, data in (
        ("gzip", gzip.compress(json_body({"input": x}))),
        ("deflate", zlib.compress(json_body({"input": x}))),
    ):
        response = server.infer(data, {"Content-Encoding": encoding})
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json()["outputs"][0]["data"], reference_mlp(x).reshape(-1), rtol=1e-5)
    refused = server.infer(json_body({"input": x}), {"Content-Encoding": "br"})
    assert refused.status_code == 415
    assert 'Content-Encoding "br" is not supported' in refused.json()["error"]


def test_unknown_models_versions_paths_and_methods(server: RuntimeServer) -> None:
    body = inputs(GOOD)
    unknown = server.infer(body, model="nope")
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "model 'nope' is not served here (this server serves 'mlp')"}
    version = server.post("/v2/models/mlp/versions/9/infer", content=body)
    assert version.status_code == 404
    assert "has no version '9' (serving version '1')" in version.json()["error"]
    assert server.get("/v2/models/nope/ready").status_code == 404
    assert server.get("/v2/models/nope").status_code == 404
    wrong_method = server.get("/v2/models/mlp/infer")
    assert wrong_method.status_code == 405
    assert "error" in wrong_method.json()
    assert server.get("/v3/whatever").json() == {"error": "Not Found: GET /v3/whatever"}


def test_metrics_count_answers_by_status_and_nothing_is_logged_as_an_error(server: RuntimeServer) -> None:
    labels = {"model": "mlp", "revision": "2"}

    def counts() -> dict[str, float]:
        return {
            c: server.metric("mlmodel_runtime_requests_total", code=c, **labels) for c in ("200", "400", "404", "413")
        }

    before = counts()
    x = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    body, headers = binary_body({"input": x})
    assert server.infer(body, headers).status_code == 200
    assert server.infer(b"{").status_code == 400
    assert server.infer(inputs({**GOOD, "shape": [4]})).status_code == 400
    assert server.infer(b"x" * (LIMIT + 1)).status_code == 413
    assert server.post("/v2/models/mlp/versions/9/infer", content=body).status_code == 404
    assert server.infer(body, model="other").status_code == 404  # not this model's request: not counted
    after = counts()
    assert {c: after[c] - before[c] for c in after} == {"200": 1, "400": 2, "404": 1, "413": 1}
    assert server.metric("mlmodel_runtime_requests_total", code="500", **labels) == 0
    assert server.metric("mlmodel_runtime_inflight_requests", **labels) == 0
    assert server.metric("mlmodel_runtime_request_duration_seconds_count", **labels) >= 5
    assert server.get("/v2/health/live").status_code == 200
    assert server.proc.poll() is None
    assert [r for r in server.log_records() if r["level"] in ("error", "critical")] == []


def test_a_client_that_hangs_up_mid_body_does_not_hurt(server: RuntimeServer) -> None:
    labels = {"model": "mlp", "revision": "2"}
    before = server.metric("mlmodel_runtime_requests_total", code="499", **labels)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    wait_for(
        lambda: server.metric("mlmodel_runtime_requests_total", code="499", **labels) == before + 1,
        10,
        "the abandoned request to be counted as 499",
    )
    assert server.get("/v2/health/live").status_code == 200
    assert [r for r in server.log_records() if r["level"] in ("error", "critical")] == []
