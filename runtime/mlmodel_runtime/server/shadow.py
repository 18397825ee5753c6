"""Shadow traffic: a share of the live requests, copied to a candidate revision after the stable answer is
computed, whose answers are compared with the stable ones and never returned to a client.

Off the response path and bounded: `offer` only schedules the copy (it never awaits), at most
`max_inflight` copies run at once and the rest are dropped and counted, every copy has a timeout, and a slow,
failing or dead candidate costs the stable revision nothing but those tasks. The share is exact, not random:
a credit grows by `percent`/100 per request and a copy goes out each time it reaches 1.

The copies go over a few kept-alive HTTP/1.1 connections of a small client below (asyncio streams): httpx cost
about 2 ms of CPU per copy, which at a 10% share took 65% of the stable runtime's throughput on 2 cores
(bench/canary/shadow_bench.py); the candidate is our own runtime, whose answers always carry Content-Length.

Metrics (`mlmodel_runtime_shadow_requests_total{model, revision, candidate, result}`): agree (every output
within the tolerance), disagree, error (the candidate failed, timed out or answered something unreadable),
dropped (too many copies in flight). The operator's canary analysis reads agree and disagree.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np
import orjson
from prometheus_client import Counter

from mlmodel_runtime.backends.base import DTYPES, Array, datatype_of

log = logging.getLogger(__name__)

RESULTS = ("agree", "disagree", "error", "dropped")


@dataclass(frozen=True)
class Tolerance:
    """Outputs agree when |candidate - stable| <= absolute + relative * |stable| everywhere (numpy.allclose)."""

    absolute: float = 1e-5
    relative: float = 1e-3


@dataclass(frozen=True)
class ShadowConfig:
    url: str  # the candidate's base URL, e.g. http://fraud-canary.risk.svc:8080
    candidate: str  # its revision, for the metrics
    percent: float
    tolerance: Tolerance = Tolerance()
    per_output: Mapping[str, Tolerance] = field(default_factory=dict)
    max_inflight: int = 16
    timeout_s: float = 5.0



def encode_request(inputs: Mapping[str, Array], outputs: Mapping[str, Array]) -> tuple[bytes, int]:
    """A V2 binary-tensor request for `inputs` asking for `outputs` as binary data: (body, JSON header length)."""
    entries, chunks = [], []
    for name, array in inputs.items():
        datatype = datatype_of(array.dtype)
        raw = np.ascontiguousarray(array, dtype=DTYPES[datatype]).tobytes()
        entries.append({"name": name, "datatype": datatype, "shape": list(array.shape),
                        "parameters": {"binary_data_size": len(raw)}})
        chunks.append(raw)
    header = orjson.dumps({
        "inputs": entries,
        "outputs": [{"name": name, "parameters": {"binary_data": True}} for name in outputs],
    })
    return b"".join((header, *chunks)), len(header)


def decode_response(body: bytes, header_length: int) -> dict[str, Array]:
    """The binary outputs of a V2 response (ValueError when it is not one)."""
    header = orjson.loads(body[:header_length])
    offset = header_length
    decoded: dict[str, Array] = {}
    for entry in header["outputs"]:
        size = int(entry["parameters"]["binary_data_size"])
        dtype = DTYPES[entry["datatype"]]
        decoded[entry["name"]] = np.frombuffer(body, dtype=dtype, count=size // dtype.itemsize,
                                               offset=offset).reshape(entry["shape"])
        offset += size
    if offset != len(body):
        raise ValueError(f"response holds {len(body) - offset} bytes beyond its outputs")
    return decoded


def agrees(stable: Mapping[str, Array], candidate: Mapping[str, Array], config: ShadowConfig) -> bool:
    for name, expected in stable.items():
        got = candidate.get(name)
        if got is None or got.shape != expected.shape:
            return False
        tol = config.per_output.get(name, config.tolerance)
        if expected.dtype.kind in "iufb":
            if not np.allclose(got, expected, atol=tol.absolute, rtol=tol.relative, equal_nan=True):
                return False
        elif not np.array_equal(got, expected):
            return False
    return True


class ShadowError(Exception):
    pass


class _Connections:
    """Kept-alive HTTP/1.1 connections to one host: POST a body, get (status, headers, body)."""

    def __init__(self, url: str, timeout_s: float) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"shadow URL {url!r}: expected http://host[:port]")
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout_s = timeout_s
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n{head}\r\n"
                   .encode("latin-1") + body)
        async with asyncio.timeout(self.timeout_s):
            while self._idle:  # a kept connection the server has closed meanwhile (its idle timeout): the next
                try:
                    return await self._exchange(*self._idle.pop(), request)
                except (asyncio.IncompleteReadError, ConnectionError):
                    continue
            return await self._exchange(*await asyncio.open_connection(self.host, self.port), request)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            writer.write(request)
            top = await reader.readuntil(b"\r\n\r\n")
            status_line, *lines = top.decode("latin-1").split("\r\n")
            fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
            content = await reader.readexactly(int(fields.get("content-length", "0")))
        except BaseException:
            writer.close()
            raise
        if fields.get("connection", "").lower() == "close":
            writer.close()
        else:
            self._idle.append((reader, writer))
        return int(status_line.split()[1]), fields, content

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


class Shadow:
    """Copies requests of `model` (revision `revision`) to the candidate and compares the answers."""

    def __init__(self, config: ShadowConfig, model: str, revision: str, counter: Counter) -> None:
        self.config = config
        self.model = model
        self._counts = {r: counter.labels(model, revision, config.candidate, r) for r in RESULTS}
        self._credit = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections = _Connections(config.url, config.timeout_s)
        self._infer_path = f"{urlsplit(config.url).path.rstrip('/')}/v2/models/{model}/infer"

    def offer(self, inputs: Mapping[str, Array], outputs: Mapping[str, Array]) -> None:
        """Called on the event loop with a request's inputs and the stable outputs, after they are computed."""
        self._credit += self.config.percent / 100
        if self._credit < 1:
            return
        self._credit -= 1
        if len(self._tasks) >= self.config.max_inflight:
            self._counts["dropped"].inc()
            return
        if any(a.dtype.kind not in "iufb" for a in inputs.values()):
            return  # BYTES tensors are not copied (their binary layout is per element); nothing is counted
        task = asyncio.get_running_loop().create_task(self._compare(dict(inputs), dict(outputs)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _compare(self, inputs: dict[str, Array], stable: dict[str, Array]) -> None:
        body, header_length = encode_request(inputs, stable)
        headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(header_length)}
        try:
            status, fields, content = await self._connections.post(self._infer_path, body, headers)
            if status != 200:
                raise ShadowError(f"HTTP {status}: {content[:200]!r}")
            answer = decode_response(content, int(fields["inference-header-content-length"]))
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ShadowError,
                ValueError, KeyError, TypeError) as exc:
            log.debug("shadow request failed: %s", exc)
            self._counts["error"].inc()
            return
        self._counts["agree" if agrees(stable, answer, self.config) else "disagree"].inc()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._connections.close()
