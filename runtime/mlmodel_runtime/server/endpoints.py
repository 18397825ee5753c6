"""HTTP endpoints of the Open Inference Protocol: read the request, call the data plane, answer.

Health and metadata are plain Starlette handlers (Request in, Response out). Infer is the hot
path, so `InferEndpoint` is a bare ASGI app: it reads the headers it needs straight from the
scope and the body from `receive`, and `InferFastPath` (the app's innermost middleware... the
outermost one after uvicorn) hands it infer requests before FastAPI's middleware stack and router
see them; that stack costs several times our own per-request work. Errors become
`{"error": "..."}` with the status from server/errors.py.
"""

from __future__ import annotations

import logging
import re
import time
import zlib
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mlmodel_runtime.server.dataplane import DataPlane
from mlmodel_runtime.server.errors import (
    InvalidInput,
    PayloadTooLarge,
    ServingError,
    UnsupportedEncoding,
    status_for,
)

log = logging.getLogger(__name__)

JSON = "application/json"
OCTETS = "application/octet-stream"
INFER_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")
_JSON_HEADERS = [(b"content-type", JSON.encode())]
_BINARY_HEADERS = [(b"content-type", OCTETS.encode())]
_ZLIB_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status, headers, JSON)


def error_response(exc: BaseException, status: int) -> Response:
    headers = exc.headers if isinstance(exc, ServingError) else None
    message = str(exc) if status != 500 else f"internal error: {type(exc).__name__}: {exc}"
    return json_response({"error": message}, status, headers or None)


def decode_content(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo a gzip/deflate Content-Encoding, refusing output over `limit` bytes."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    wbits = _ZLIB_WBITS.get(encoding)
    if wbits is None:
        raise UnsupportedEncoding(f"Content-Encoding '{encoding}' is not supported (use gzip, deflate or none)")
    decompressor = zlib.decompressobj(wbits)
    try:
        out = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInput(f"body is not valid {encoding} data: {exc}") from None
    if len(out) > limit or decompressor.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed request body is over the limit of {limit} bytes")
    if not decompressor.eof:
        raise InvalidInput(f"body is truncated {encoding} data")
    return out


def header_length(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"Inference-Header-Content-Length must be an integer, got {value!r}") from None


class Endpoints:
    """The handlers, bound to one data plane."""

    def __init__(self, data_plane: DataPlane, max_request_bytes: int) -> None:
        self._dp = data_plane
        self._limit = max_request_bytes
        self._metrics = data_plane.metrics

    # ---- server

    async def server_metadata(self, request: Request) -> Response:
        return json_response(self._dp.server_metadata())

    async def live(self, request: Request) -> Response:
        return json_response({"live": True})

    async def ready(self, request: Request) -> Response:
        ready = self._dp.ready()
        return json_response({"ready": ready}, 200 if ready else 503)

    async def startup(self, request: Request) -> Response:
        started = self._dp.started()
        return json_response({"started": started}, 200 if started else 503)

    # ---- model

    async def model_metadata(self, request: Request) -> Response:
        params = request.path_params
        try:
            return json_response(self._dp.model_metadata(params["name"], params.get("version")))
        except Exception as exc:
            return self._failure(exc)

    async def model_ready(self, request: Request) -> Response:
        params = request.path_params
        try:
            ready = self._dp.model_ready(params["name"], params.get("version"))
        except Exception as exc:
            return self._failure(exc)
        return json_response({"name": params["name"], "ready": ready}, 200 if ready else 503)

    def _failure(self, exc: BaseException) -> Response:
        status = status_for(exc)
        if status >= 500 and not isinstance(exc, ServingError):
            log.error("request failed", exc_info=exc)
        return error_response(exc, status)


class InferEndpoint:
    """POST /v2/models/{name}[/versions/{version}]/infer as a bare ASGI app."""

    def __init__(self, data_plane: DataPlane, max_request_bytes: int) -> None:
        self._dp = data_plane
        self._limit = max_request_bytes
        self._metrics = data_plane.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = INFER_PATH.match(scope["path"])
        if match is None:  # pragma: no cover - routed here only for this path
            await self._send(send, 404, orjson.dumps({"error": "not found"}), _JSON_HEADERS)
            return
        await self.handle(scope, receive, send, match[1], match[2])

    async def handle(self, scope: Scope, receive: Receive, send: Send, name: str, version: str | None) -> None:
        started = time.perf_counter()
        mine = name == self._dp.model_name  # count only this model's requests (no label per typo)
        metrics = self._metrics
        if mine:
            metrics.inflight.inc()
        try:
            length = encoding = header_len = None
            for key, value in scope["headers"]:
                if key == b"content-length":
                    length = value
                elif key == b"inference-header-content-length":
                    header_len = value
                elif key == b"content-encoding":
                    encoding = value
            body = await self._read_body(receive, length)
            if encoding is not None:
                body = decode_content(body, encoding.decode("latin-1"), self._limit)
            result = await self._dp.infer(
                name, version, body, header_length(None if header_len is None else header_len.decode("latin-1"))
            )
            status = 200
            payload = result.body
            if result.header_length is None:
                headers = _JSON_HEADERS
            else:
                headers = [*_BINARY_HEADERS, (b"inference-header-content-length", b"%d" % result.header_length)]
        except Exception as exc:
            status = status_for(exc)
            if status >= 500 and not isinstance(exc, ServingError):
                log.error("request failed", exc_info=exc)
            error = error_response(exc, status)
            payload = bytes(error.body)
            headers = [(k, v) for k, v in error.raw_headers if k != b"content-length"]
        finally:
            if mine:
                metrics.inflight.dec()
        await self._send(send, status, payload, headers)
        if mine:
            metrics.count_request(status)
            metrics.request_duration.observe(time.perf_counter() - started)

    @staticmethod
    async def _send(send: Send, status: int, payload: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", b"%d" % len(payload))],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def _read_body(self, receive: Receive, length: bytes | None) -> bytes:
        limit = self._limit
        if length is not None:
            if not length.isdigit():
                raise InvalidInput(f"Content-Length must be an integer, got {length.decode('latin-1')!r}")
            if int(length) > limit:
                raise PayloadTooLarge(f"request body of {length.decode()} bytes is over the limit of {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class InferFastPath:
    """Middleware that serves POST .../infer with InferEndpoint and passes everything else on."""

    def __init__(self, app: ASGIApp, endpoint: InferEndpoint) -> None:
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = INFER_PATH.match(scope["path"])
            if match is not None:
                await self.endpoint.handle(scope, receive, send, match[1], match[2])
                return
        await self.app(scope, receive, send)
