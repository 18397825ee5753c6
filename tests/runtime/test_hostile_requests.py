"""A real runtime under hostile framing and load: length headers of thousands of digits (400, not
500), a body's size, model and room in the byte budget checked before the body is read (413, 404,
503 with Retry-After, answered while the body is still unsent), multi-member gzip bodies served,
data after the stream refused, and a request larger than the whole budget still served alone."""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterator

import numpy as np
import pytest

from tests.runtime.conftest import mlp_package
from tests.runtime.models import json_body
from tests.runtime.process import RuntimeServer, start_server
from tests.runtime.rawhttp import head, read_response, send
from tests.support.packages import reference_mlp
from tests.support.waiting import wait_for

LIMIT = 1 << 20
BUDGET = 200_000
PATH = "/v2/models/mlp/infer"
LABELS = {"model": "mlp", "revision": ""}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeServer]:
    root = tmp_path_factory.mktemp("hostile")
    server = start_server(
        str(mlp_package(root, "onnx")),
        root,
        max_request_bytes=LIMIT,
        request_budget_bytes=BUDGET,
        request_budget_wait_ms=300,
    )
    yield server
    server.stop()


def rows(n: int) -> np.ndarray:
    return np.arange(n * 4, dtype=np.float32).reshape(n, 4) / 7


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Length": "0" * 5000 + "2"},
        {"Content-Length": "2", "Inference-Header-Content-Length": "0" * 5000 + "2"},
        {"Content-Length": "2", "Inference-Header-Content-Length": "+2"},
        {"Content-Length": "2", "Inference-Header-Content-Length": "1_2"},
    ],
    ids=["content-length", "header-length", "plus-sign", "underscore"],
)
def test_length_headers_are_parsed_strictly(server: RuntimeServer, headers: dict[str, str]) -> None:
    response = send(server.port, head(PATH, headers) + b"{}")
    assert response.status == 400, response.body
    assert "must be a decimal integer of at most 20 digits" in response.json()["error"]


@pytest.mark.parametrize(
    ("path", "length", "status"),
    [(PATH, LIMIT + 1, 413), ("/v2/models/other/infer", 500_000, 404), ("/v2/models/mlp/versions/9/infer", 10, 404)],
)
def test_the_answer_comes_before_the_body_is_sent(server: RuntimeServer, path: str, length: int, status: int) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head(path, {"Content-Length": str(length)}))
        response = read_response(sock)  # no body sent at all
    assert response.status == status
    assert "error" in response.json()


def test_multi_member_gzip_is_served_and_trailing_data_refused(server: RuntimeServer) -> None:
    x = rows(3)
    body = json_body({"input": x})
    members = gzip.compress(body[:10]) + gzip.compress(body[10:40]) + gzip.compress(body[40:])
    served = server.infer(members, {"Content-Encoding": "gzip"})
    assert served.status_code == 200, served.text
    np.testing.assert_allclose(served.json()["outputs"][0]["data"], reference_mlp(x).reshape(-1), rtol=1e-5)
    refused = server.infer(gzip.compress(body) + b"trailing", {"Content-Encoding": "gzip"})
    assert refused.status_code == 400
    assert "gzip member 2" in refused.json()["error"]


def test_deeply_nested_values_get_a_400(server: RuntimeServer) -> None:
    for field in ("datatype", "shape", "data", "name"):
        text = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
        body = text.replace(f'"{field}": ', f'"{field}": ' + "[" * 1000, 1).replace("}]}", "]" * 1000 + "}]}")
        if field in ("datatype", "name"):
            body = text.replace('"FP32"' if field == "datatype" else '"input"', "[" * 1000 + '"x"' + "]" * 1000)
        response = server.infer(body.encode())
        assert response.status_code == 400, (field, response.text)
        assert len(response.json()["error"]) < 300


def test_beyond_the_byte_budget_requests_wait_then_get_503_and_are_served_after(server: RuntimeServer) -> None:
    held = 150_000
    body = json_body({"input": rows(2000)})  # ~100 kB: fits alone, not beside the held request
    assert BUDGET - held < len(body) < BUDGET
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head(PATH, {"Content-Length": str(held)}) + b"{")  # admitted, then sends slowly
        # admitted: it holds its decoding cost, capped at the whole budget
        wait_for(lambda: server.metric("mlmodel_runtime_request_bytes_reserved", **LABELS) == BUDGET, 30, "admission")
        refused = server.infer(body)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        assert "could not admit" in refused.json()["error"]
        sock.sendall(b" " * (held - 1))
        assert read_response(sock).status == 400  # '{' and spaces: malformed JSON, and the bytes go back
    served = server.infer(body)
    assert served.status_code == 200, served.text
    alone = server.infer(json_body({"input": rows(5000)}))  # larger than the whole budget: served alone
    assert alone.status_code == 200, alone.text
    assert server.metric("mlmodel_runtime_requests_total", code="500", **LABELS) == 0
    assert server.metric("mlmodel_runtime_request_budget_bytes", **LABELS) == BUDGET
    # all given back (right after each answer is sent)
    wait_for(lambda: server.metric("mlmodel_runtime_request_bytes_reserved", **LABELS) == 0, 30, "reservations closed")
