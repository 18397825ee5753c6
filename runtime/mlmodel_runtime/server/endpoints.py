"""HTTP endpoints of the Open Inference Protocol: read the request, call the data plane, answer.

Plain Starlette handlers (Request in, Response out): no per-request dependency injection or
pydantic models, because the infer route is the hot path. Errors become `{"error": "..."}`
with the status from server/errors.py.
"""

from __future__ import annotations

import logging
import time
import zlib
from typing import Any

import orjson
from mlmodel_runtime.server.dataplane import DataPlane
from mlmodel_runtime.server.errors import (
    InvalidInput,
    PayloadTooLarge,
    ServingError,
    UnsupportedEncoding,
    status_for,
)
from starlette.requests import Request
from starlette.responses import Response

log = logging.getLogger(__name__)

JSON = "application/json"
OCTETS = "application/octet-stream"
HEADER_LENGTH = "inference-header-content-length"
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
        raise UnsupportedEncoding(
            f"Content-Encoding '{encoding}' is not supported (use gzip, deflate or none)"
        )
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

    async def infer(self, request: Request) -> Response:
        started = time.perf_counter()
        params = request.path_params
        name = params["name"]
        mine = name == self._dp.model_name  # count only this model's requests (no label per typo)
        metrics = self._metrics
        if mine:
            metrics.inflight.inc()
        try:
            headers = request.headers
            body = await self._read_body(request, headers.get("content-length"))
            encoding = headers.get("content-encoding")
            if encoding is not None:
                body = decode_content(body, encoding, self._limit)
            result = await self._dp.infer(
                name, params.get("version"), body, header_length(headers.get(HEADER_LENGTH))
            )
            if result.header_length is None:
                response = Response(result.body, 200, None, JSON)
            else:
                response = Response(
                    result.body, 200, {"Inference-Header-Content-Length": str(result.header_length)}, OCTETS
                )
        except Exception as exc:
            response = self._failure(exc)
        finally:
            if mine:
                metrics.inflight.dec()
        if mine:
            metrics.count_request(response.status_code)
            metrics.request_duration.observe(time.perf_counter() - started)
        return response

    async def _read_body(self, request: Request, length: str | None) -> bytes:
        limit = self._limit
        if length is not None:
            if not length.isdigit():
                raise InvalidInput(f"Content-Length must be an integer, got {length!r}")
            if int(length) > limit:
                raise PayloadTooLarge(f"request body of {length} bytes is over the limit of {limit} bytes")
            return await request.body()
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _failure(self, exc: BaseException) -> Response:
        status = status_for(exc)
        if status >= 500 and not isinstance(exc, ServingError):
            log.error("request failed", exc_info=exc)
        return error_response(exc, status)
