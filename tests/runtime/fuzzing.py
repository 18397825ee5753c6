"""A seeded fuzzer of the runtime's infer endpoint: the same seed gives the same cases, byte for byte.

Cases against two served models, the MLP (`mlp`, FP32 [-1, 4] -> [-1, 2]) and the echo model
(`echo`, one [-1, 2] tensor of every V2 datatype, returned as is):

- valid    well-formed JSON or binary-extension requests, interleaved with the rest, whose answers
           are checked (echo: outputs equal inputs; MLP: the reference computation);
- mutated  a valid request with one value of its JSON replaced by a hostile one (nested 1000 deep,
           huge or negative numbers, long strings, wrong types, lone surrogates), a key dropped or
           an entry duplicated;
- bytes    a valid body with random byte-level edits (flips, inserts, cuts, repeats);
- binary   a valid binary-extension body with a lying header length or binary_data_size;
- framing  raw HTTP: length headers of every shape, chunked bodies, gzip/deflate members and garbage,
           bodies shorter than declared, odd methods, paths and header sizes.

`check` states what every answer must be: no 5xx but 503 with Retry-After, every 4xx from the runtime
with a JSON `{"error": ...}` body (the HTTP parser's own "Invalid HTTP request" 400 is plain text), and
valid requests answered 200 with the right outputs.
"""

from __future__ import annotations

import gzip
import json
import random
import socket
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tests.runtime.models import ECHO_TYPES
from tests.runtime.rawhttp import RawResponse, head, read_response
from tests.support.packages import reference_mlp

PARSER_ERROR = b"Invalid HTTP request received."
NEST = "\x00nest\x00"  # a placeholder serialized as 1000 nested arrays (json.dumps would recurse)


@dataclass
class Case:
    kind: str
    model: str
    """Which server gets it (each serves one model)."""
    raw: bytes
    """The whole request as sent: head and body."""
    expect: Callable[[RawResponse], str | None] | None = None
    """For valid requests: returns what is wrong with the answer, None when right."""
    half_close: bool = False
    """Shut the sending side after `raw` (the body is shorter than declared): no answer is fine."""


@dataclass
class Outcome:
    cases: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_status: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- valid requests


def _values(rng: random.Random, datatype: str, count: int) -> list[Any]:
    dtype = np.dtype(ECHO_TYPES[datatype][1])
    if datatype == "BOOL":
        return [rng.random() < 0.5 for _ in range(count)]
    if datatype == "BYTES":
        alphabet = 'abc é€😀"\\\n\t'
        return ["".join(rng.choice(alphabet) for _ in range(rng.randrange(6))) for _ in range(count)]
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        edges = [int(info.min), int(info.max), 0, 1]
        return [
            rng.choice(edges) if rng.random() < 0.3 else rng.randint(int(info.min), int(info.max)) for _ in range(count)
        ]
    return [rng.randrange(-512, 512) / 4 for _ in range(count)]  # exact in FP16, FP32 and FP64


def valid_echo(rng: random.Random) -> tuple[dict[str, Any], dict[str, list[Any]], bool]:
    """A JSON echo request, its expected outputs (flat) and whether the outputs come as binary."""
    rows = rng.randrange(1, 4)
    inputs, expected = [], {}
    for datatype in ECHO_TYPES:
        values = _values(rng, datatype, rows * 2)
        data: Any = values if rng.random() < 0.7 else [values[i : i + 2] for i in range(0, len(values), 2)]
        inputs.append({"name": f"in_{datatype}", "datatype": datatype, "shape": [rows, 2], "data": data})
        expected[f"out_{datatype}"] = values
    rng.shuffle(inputs)
    binary = rng.random() < 0.3
    request: dict[str, Any] = {"id": f"r{rng.randrange(10**6)}", "inputs": inputs}
    if binary:
        request["parameters"] = {"binary_data_output": True}
    return request, expected, binary


def valid_mlp(rng: random.Random) -> tuple[dict[str, Any], np.ndarray]:
    rows = rng.randrange(1, 5)
    x = np.array([[rng.randrange(-64, 64) / 8 for _ in range(4)] for _ in range(rows)], np.float32)
    request = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows, 4], "data": x.reshape(-1).tolist()}]}
    return request, reference_mlp(x)


def binary_echo(rng: random.Random) -> tuple[bytes, int, dict[str, list[Any]]]:
    """The echo request with every input as binary data: body, header length, expected outputs."""
    rows = rng.randrange(1, 4)
    tensors, chunks, expected = [], [], {}
    for datatype, (_, dtype) in ECHO_TYPES.items():
        values = _values(rng, datatype, rows * 2)
        if datatype == "BYTES":
            raw = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)
        else:
            raw = np.array(values, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()
        tensors.append(
            {
                "name": f"in_{datatype}",
                "datatype": datatype,
                "shape": [rows, 2],
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        chunks.append(raw)
        expected[f"out_{datatype}"] = values
    header = json.dumps({"inputs": tensors}).encode()
    return header + b"".join(chunks), len(header), expected


def _decoded_outputs(response: RawResponse) -> dict[str, list[Any]]:
    length = response.headers.get("inference-header-content-length")
    header_len = int(length) if length is not None else len(response.body)
    document = json.loads(response.body[:header_len])
    offset = header_len
    outputs: dict[str, list[Any]] = {}
    for output in document["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        if size is None:
            outputs[output["name"]] = output["data"]
            continue
        raw = response.body[offset : offset + size]
        offset += size
        if output["datatype"] == "BYTES":
            values, at = [], 0
            while at < len(raw):
                (n,) = struct.unpack_from("<I", raw, at)
                values.append(raw[at + 4 : at + 4 + n].decode())
                at += 4 + n
            outputs[output["name"]] = values
        else:
            dtype = np.dtype(ECHO_TYPES[output["datatype"]][1]).newbyteorder("<")
            outputs[output["name"]] = np.frombuffer(raw, dtype).tolist()
    return outputs


def expect_echo(expected: dict[str, list[Any]]) -> Callable[[RawResponse], str | None]:
    def check(response: RawResponse) -> str | None:
        if response.status != 200:
            return f"valid echo request got {response.status}: {response.body[:300]!r}"
        got = _decoded_outputs(response)
        for name, values in expected.items():
            if got.get(name) != values:
                return f"{name}: sent {values[:6]}, got {str(got.get(name))[:200]}"
        return None

    return check


def expect_mlp(y: np.ndarray) -> Callable[[RawResponse], str | None]:
    def check(response: RawResponse) -> str | None:
        if response.status != 200:
            return f"valid MLP request got {response.status}: {response.body[:300]!r}"
        data = np.array(json.loads(response.body)["outputs"][0]["data"], np.float32)
        if not np.allclose(data, y.reshape(-1), rtol=1e-4, atol=1e-5):
            return f"MLP output {data[:4]} differs from {y.reshape(-1)[:4]}"
        return None

    return check


# ---------------------------------------------------------------- hostile values and edits


def _hostile(rng: random.Random) -> Any:
    return rng.choice(
        [
            None,
            True,
            False,
            0,
            -1,
            2**63,
            2**64,
            -(2**63) - 1,
            10**40,
            1e308,
            -0.0,
            0.5,
            "",
            "x" * rng.choice([1, 1000, 100_000]),
            "FP32",
            "BYTES",
            "\ud800",
            "\u0000",
            [],
            {},
            [[[]]],
            NEST,
            {"a": NEST},
            [1] * 1000,
            [2**40, 2],
            [-1, 2],
            [
                1,
                2,
                3,
                4,
                5,
                6,
                7,
                8,
                9,
                10,
                11,
                12,
                13,
                14,
                15,
                16,
                17,
                18,
                19,
                20,
                21,
                22,
                23,
                24,
                25,
                26,
                27,
                28,
                29,
                30,
                31,
                32,
                33,
            ],
            {"binary_data_size": -1},
            {"binary_data_size": 2**62},
            {"binary_data": "yes"},
            {"classification": 3},
        ]
    )


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _nodes(child, (*path, key))
    elif isinstance(value, list) and len(value) <= 64:
        for index, child in enumerate(value):
            yield from _nodes(child, (*path, index))


def mutate(document: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A copy of `document` with one node replaced, dropped or duplicated."""
    copy: dict[str, Any] = json.loads(json.dumps(document))
    paths = [p for p in _nodes(copy) if p]
    path = rng.choice(paths)
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    action = rng.random()
    if action < 0.7:
        parent[last] = _hostile(rng)
    elif action < 0.85:
        del parent[last]
    elif isinstance(parent, list):
        parent.append(json.loads(json.dumps(parent[last])))
    else:
        parent[f"{last}_"] = parent[last]
    return copy


def dumps(document: Any) -> bytes:
    text = json.dumps(document)
    return text.replace(json.dumps(NEST), "[" * 1000 + "]" * 1000).encode()


def byte_edits(body: bytes, rng: random.Random) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randrange(1, 4)):
        at = rng.randrange(len(data) + 1)
        choice = rng.random()
        if choice < 0.3 and data:
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif choice < 0.5:
            data[at:at] = rng.choice(
                [b"[", b"]", b"{", b"}", b",", b'"', b"\\", b"\x00", b"\xff", b"1e999", b"-", b"true"]
            )
        elif choice < 0.7:
            del data[at : at + rng.randrange(1, 16)]
        elif choice < 0.85:
            data[at:at] = data[at : at + rng.randrange(1, 32)]
        else:
            del data[at:]
    return bytes(data)


# ---------------------------------------------------------------- requests as bytes


def http(path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    return head(path, {"Content-Type": "application/json", "Content-Length": str(len(body)), **(headers or {})}) + body


def chunked(path: str, body: bytes, rng: random.Random, corrupt: bool) -> bytes:
    pieces, at = [], 0
    while at < len(body):
        n = rng.randrange(1, 4096)
        pieces.append(b"%x\r\n%s\r\n" % (len(body[at : at + n]), body[at : at + n]))
        at += n
    if corrupt:
        spot = rng.randrange(len(pieces) + 1)
        pieces.insert(
            spot,
            rng.choice(
                [b"zz\r\nab\r\n", b"5\r\nab\r\n", b"-1\r\n\r\n", b"ffffffffffffffffff\r\n", b"3;ext=1\r\nabc\r\n"]
            ),
        )
    return head(path, {"Transfer-Encoding": "chunked"}) + b"".join(pieces) + b"0\r\n\r\n"


def framing(rng: random.Random, body: bytes, model: str) -> Case:
    path = f"/v2/models/{model}/infer"
    case = _framing(rng, body, path)
    case.model = model
    return case


def _framing(rng: random.Random, body: bytes, path: str) -> Case:
    choice = rng.randrange(14)
    length = str(len(body))
    if choice == 0:
        value = rng.choice(
            [
                "0" * rng.choice([25, 5000]) + length,
                "+" + length,
                length + "_0",
                "-1",
                "0x10",
                " ",
                length + ", " + length,
            ]
        )
        return Case("framing", "", head(path, {"Content-Length": value}) + body, half_close=True)
    if choice == 1:
        value = rng.choice(
            ["0" * 5000 + "12", "+12", "1_2", "-5", "ten", "99999999999999999999", "", str(len(body) + 1), "0"]
        )
        return Case("framing", "", http(path, body, {"Inference-Header-Content-Length": value}))
    if choice == 2:
        return Case(
            "framing",
            "",
            http(path, body, {"Inference-Header-Content-Length": "1", "inference-header-content-length": "2"}),
        )
    if choice == 3:
        members = b"".join(gzip.compress(body[i : i + 50]) for i in range(0, len(body), 50))
        tail = rng.choice([b"", b"", b"garbage", b"\0" * 8, gzip.compress(b"")[:7]])
        return Case(
            "framing", "", http(path, members + tail, {"Content-Encoding": rng.choice(["gzip", "x-gzip", "GZIP"])})
        )
    if choice == 4:
        data = rng.choice(
            [zlib.compress(body), zlib.compress(body)[2:-4], zlib.compress(body) + b"x", b"", b"\x1f\x8b"]
        )
        return Case(
            "framing",
            "",
            http(path, data, {"Content-Encoding": rng.choice(["deflate", "gzip", "br", "gzip, gzip", "identity"])}),
        )
    if choice == 5:
        corrupt = rng.random() < 0.5
        return Case("framing", "", chunked(path, body, rng, corrupt), half_close=corrupt)
    if choice == 6:  # declared longer than sent
        return Case(
            "framing",
            "",
            head(path, {"Content-Length": str(len(body) + rng.randrange(1, 10**6))}) + body,
            half_close=True,
        )
    if choice == 7:
        return Case(
            "framing",
            "",
            head(path, {"Content-Length": length, "Transfer-Encoding": "chunked"}) + body,
            half_close=True,
        )
    if choice == 8:
        method = rng.choice(["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
        return Case("framing", "", head(path, {"Content-Length": length}, method=method) + body)
    if choice == 9:
        odd = rng.choice(
            [
                "/v2/models/%00/infer",
                "/v2/models/" + "m" * 5000 + "/infer",
                "/v2/models/mlp/versions/%ff/infer",
                "/v2/models//infer",
                "/v2/models/mlp/versions/" + "9" * 3000 + "/infer",
            ]
        )
        return Case("framing", "", http(odd, body))
    if choice == 10:
        return Case("framing", "", http(path, body, {"X-Big": "a" * rng.choice([100, 8000, 60000])}))
    if choice == 11:
        return Case("framing", "", http(path, body, {"Expect": "100-continue"}))
    if choice == 12:
        return Case(
            "framing",
            "",
            http(path, body, {"Content-Type": rng.choice(["text/plain", "application/octet-stream", "", "a" * 1000])}),
        )
    return Case("framing", "", head(path, {"Content-Length": "0"}))


def cases(seed: int, count: int) -> Iterator[Case]:
    """`count` cases from `seed`; about one in five is a valid request whose answer is checked."""
    rng = random.Random(seed)
    for _ in range(count):
        model = "echo" if rng.random() < 0.6 else "mlp"
        path = f"/v2/models/{model}/infer"
        if model == "echo":
            document, expected, _ = valid_echo(rng)
            check = expect_echo(expected)
        else:
            document, y = valid_mlp(rng)
            check = expect_mlp(y)
        body = dumps(document)
        roll = rng.random()
        if roll < 0.2:
            yield Case("valid", model, http(path, body), check)
        elif roll < 0.25 and model == "echo":
            raw, header_length, expected = binary_echo(rng)
            yield Case(
                "valid",
                model,
                http(path, raw, {"Inference-Header-Content-Length": str(header_length)}),
                expect_echo(expected),
            )
        elif roll < 0.5:
            yield Case("mutated", model, http(path, dumps(mutate(document, rng))))
        elif roll < 0.65:
            yield Case("bytes", model, http(path, byte_edits(body, rng)))
        elif roll < 0.8 and model == "echo":
            raw, header_length, _ = binary_echo(rng)
            if rng.random() < 0.5:
                header_length += rng.choice([-1, 1, -header_length, len(raw) - header_length, 7])
            else:
                raw = byte_edits(raw, rng)
            yield Case("binary", model, http(path, raw, {"Inference-Header-Content-Length": str(header_length)}))
        else:
            yield framing(rng, body, model)


# ---------------------------------------------------------------- running and judging


def exchange(port: int, case: Case, timeout: float = 20) -> RawResponse | None:
    """Send one case on its own connection; None when the server closed it without an answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(case.raw)
            if case.half_close:
                sock.shutdown(socket.SHUT_WR)
            return read_response(sock)
        except TimeoutError:
            raise AssertionError(f"no answer within {timeout} s to {case.kind} case {case.raw[:200]!r}") from None
        except (ConnectionError, OSError):
            return None


def judge(case: Case, response: RawResponse | None) -> str | None:
    """What is wrong with the answer to `case`, None when nothing."""
    if response is None:
        return None if case.half_close else "no answer"
    status = response.status
    if status >= 500 and not (status == 503 and "retry-after" in response.headers):
        return f"{status}: {response.body[:300]!r}"
    if 400 <= status < 500 and response.body != PARSER_ERROR:
        try:
            error = json.loads(response.body)["error"]
        except (ValueError, KeyError, TypeError):
            return f"{status} without a JSON error body: {response.body[:200]!r}"
        if not isinstance(error, str) or len(error) > 2000:
            return f"{status} error message not a bounded string: {str(error)[:200]}"
    if case.expect is not None:
        return case.expect(response)
    return None


def run(ports: dict[str, int], seed: int, count: int) -> Outcome:
    """Send every case of `seed` to the server of its model (`ports`: model name -> port)."""
    outcome = Outcome()
    for index, case in enumerate(cases(seed, count)):
        response = exchange(ports[case.model], case)
        outcome.cases += 1
        outcome.by_kind[case.kind] = outcome.by_kind.get(case.kind, 0) + 1
        status = 0 if response is None else response.status
        outcome.by_status[status] = outcome.by_status.get(status, 0) + 1
        problem = judge(case, response)
        if problem is not None:
            outcome.failures.append(f"case {index} (seed {seed}, {case.kind}): {problem}; sent {case.raw[:300]!r}")
    return outcome
