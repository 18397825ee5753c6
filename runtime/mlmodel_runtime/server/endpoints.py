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
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mlmodel_runtime.server.admission import ByteBudget, Reservation
from mlmodel_runtime.server.dataplane import DataPlane
from mlmodel_runtime.server.errors import InvalidInput, PayloadTooLarge, ServingError, status_for
from mlmodel_runtime.server.wire import BodyDecoder, parse_length

log = logging.getLogger(__name__)

JSON = "application/json"
OCTETS = "application/octet-stream"
INFER_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")
_JSON_HEADERS = [(b"content-type", JSON.encode())]
_BINARY_HEADERS = [(b"content-type", OCTETS.encode())]


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status, headers, JSON)


def error_response(exc: BaseException, status: int) -> Response:
    headers = exc.headers if isinstance(exc, ServingError) else None
    message = str(exc) if status != 500 else f"internal error: {type(exc).__name__}: {exc}"
    return json_response({"error": message}, status, headers or None)


JSON_DECODING_COST = 9
"""Peak memory of a JSON body while it is parsed and turned into tensors, in multiples of its size:
the body, orjson's Python objects and numpy's arrays (measured: 48 MiB of float32 data peaks at 9x;
bench/runtime-hardening/README.md). Binary tensor data costs its size: tensors are views of the body."""


def decoding_cost(size: int, header_length: int | None) -> int:
    """What a body of `size` bytes may hold of the byte budget until its tensors are decoded."""
    json_part = size if header_length is None else min(size, header_length)
    return json_part * JSON_DECODING_COST + (size - json_part)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def client_address(scope: Scope) -> str:
    """The source address of the connection (the rate limit's client without authentication)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class Endpoints:
    """The handlers, bound to one data plane."""

    def __init__(self, data_plane: DataPlane, max_request_bytes: int) -> None:
        self._dp = data_plane
        self._limit = max_request_bytes
        self._metrics = data_plane.metrics

    # ---- server

    async def server_metadata(self, request: Request) -> Response:
        try:
            await self._dp.identify(request.headers.get("authorization"))
        except Exception as exc:
            return self._failure(exc)
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
            await self._dp.identify(request.headers.get("authorization"))
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
    """POST /v2/models/{name}[/versions/{version}]/infer as a bare ASGI app.

    In order, before the body is read: the length headers (strict), the limit, the model (404, or
    503 while it loads or its queue is full), then room in the byte budget for the declared body
    (wait, or 503). The body is then read, and decoded if compressed, as it arrives.
    """

    def __init__(self, data_plane: DataPlane, max_request_bytes: int, budget: ByteBudget) -> None:
        self._dp = data_plane
        self._limit = max_request_bytes
        self._budget = budget
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
        reservation = self._budget.reservation()
        try:
            identity = None
            if self._dp.auth is not None:
                identity = await self._dp.identify(_header(scope, b"authorization"))
            self._dp.admit(identity or client_address(scope), "rest")
            length = encoding = header_len = None
            for key, value in scope["headers"]:
                if key == b"content-length":
                    length = value
                elif key == b"inference-header-content-length":
                    if header_len is not None:
                        raise InvalidInput("Inference-Header-Content-Length is given more than once")
                    header_len = value
                elif key == b"content-encoding":
                    encoding = value if encoding is None else encoding + b", " + value
            declared = parse_length(length, "Content-Length")
            header_length = None if header_len is None else parse_length(header_len, "Inference-Header-Content-Length")
            if declared is not None and declared > self._limit:
                raise PayloadTooLarge(f"request body of {declared} bytes is over the limit of {self._limit} bytes")
            self._dp.check(name, version)
            body = BodyDecoder(encoding, self._limit, declared)
            cost = decoding_cost(declared or 0, header_length)
            if not reservation.try_grow_to(cost):
                await reservation.grow_to(cost)
            result = await self._dp.infer(
                name,
                version,
                await self._read_body(receive, body, reservation, header_length),
                header_length,
                reservation,
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
        try:
            await self._send(send, status, payload, headers)
        finally:
            reservation.close()
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

    @staticmethod
    async def _read_body(
        receive: Receive, body: BodyDecoder, reservation: Reservation, header_length: int | None
    ) -> bytes | bytearray:
        """The body, decoded; a chunked or compressed body reserves its cost as it arrives."""
        message = await receive()
        first: bytes = message.get("body", b"")
        if not message.get("more_body", False) and body.whole(first):
            return first  # the usual small request: one message, as declared, nothing to undo
        while True:
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            if chunk:
                body.feed(chunk)
                cost = decoding_cost(body.size, header_length)
                if cost > reservation.held and not reservation.try_grow_to(cost):
                    await reservation.grow_to(cost)
            if not message.get("more_body", False):
                return body.finish()
            message = await receive()


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
