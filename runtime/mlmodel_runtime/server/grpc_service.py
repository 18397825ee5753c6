"""The Open Inference Protocol over gRPC (grpcio's asyncio server) and the standard grpc.health.v1 service.

It runs on the event loop of the REST listener (started from its lifespan) and calls the same
DataPlane, so both protocols share the model, the dynamic batcher, its queue bound, the request
byte budget and the metrics (`protocol="grpc"`). Errors are the data plane's, mapped once from
their HTTP status (server/errors.py) to the gRPC status of the same meaning, with the same message.

Health (for Kubernetes' native `grpc:` probes): service "" and "inference.GRPCInferenceService"
are SERVING while the model is ready (NOT_SERVING while it loads and once draining), "live" always,
"started" once the model is loaded; any other name is NOT_FOUND.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mlmodel_runtime.server.admission import ByteBudget
from mlmodel_runtime.server.dataplane import DataPlane
from mlmodel_runtime.server.errors import ServingError, status_for
from mlmodel_runtime.server.grpc_codec import decode_infer_request, encode_infer_response, model_metadata
from mlmodel_runtime.server.oip import grpc_predict_v2_pb2 as pb
from mlmodel_runtime.server.wire import quote

log = logging.getLogger(__name__)

SERVICE_NAME = "inference.GRPCInferenceService"

GRPC_CODE: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    503: grpc.StatusCode.UNAVAILABLE,
}
"""The gRPC status of each HTTP status the data plane's errors map to; anything else is INTERNAL."""


def grpc_code(status: int) -> grpc.StatusCode:
    return GRPC_CODE.get(status, grpc.StatusCode.INTERNAL)


def error_message(exc: BaseException, status: int) -> str:
    return str(exc) if status != 500 else f"internal error: {type(exc).__name__}: {exc}"


class InferenceServicer:
    """The six RPCs of the protocol, bound to one data plane."""

    def __init__(self, data_plane: DataPlane, budget: ByteBudget | None = None) -> None:
        self._dp = data_plane
        self._budget = budget
        self._metrics = data_plane.metrics
        meta = data_plane.server_metadata()
        self._server_metadata = pb.ServerMetadataResponse(
            name=meta["name"], version=meta["version"], extensions=meta["extensions"]
        )

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._dp.ready())

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Any) -> pb.ServerMetadataResponse:
        try:
            await self._dp.identify(authorization(context))
        except Exception as exc:
            await _abort(context, exc)
        return self._server_metadata

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        try:
            ready = self._dp.model_ready(request.name, request.version or None)
        except Exception as exc:
            await _abort(context, exc)
        return pb.ModelReadyResponse(ready=ready)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        try:
            await self._dp.identify(authorization(context))
            meta = self._dp.model_metadata(request.name, request.version or None)
        except Exception as exc:
            await _abort(context, exc)
        return model_metadata(meta)

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        started = time.perf_counter()
        dp = self._dp
        mine = request.model_name == dp.model_name  # count only this model's requests (no label per typo)
        metrics = self._metrics
        if mine:
            metrics.inflight.inc()
        reservation = self._budget.reservation() if self._budget is not None else None
        failure: BaseException | None = None
        try:
            if reservation is not None:
                # the message is in memory already (grpc read it whole, within max_request_bytes)
                size = request.ByteSize()
                if not reservation.try_grow_to(size):
                    await reservation.grow_to(size)
            identity = await dp.identify(authorization(context)) if dp.auth is not None else None
            dp.admit(identity or peer_address(context.peer()), "grpc")
            version, decoded, outputs = await dp.predict(
                request.model_name,
                request.model_version or None,
                lambda signature: decode_infer_request(request, signature),
            )
            response = encode_infer_response(dp.model_name, version, decoded, outputs)
            status = 200
        except Exception as exc:
            failure = exc
            status = status_for(exc)
        finally:
            if mine:
                metrics.inflight.dec()
            if reservation is not None:
                reservation.close()
        if mine:
            metrics.count_request(status, "grpc")
            metrics.grpc_request_duration.observe(time.perf_counter() - started)
        if failure is not None:
            await _abort(context, failure, status)
        return response


def authorization(context: Any) -> str | None:
    """The call's `authorization` metadata (gRPC's form of the header)."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return str(value)
    return None


def peer_address(peer: str) -> str:
    """The address in grpc's peer string ('ipv4:1.2.3.4:5678', 'ipv6:[::1]:5678', 'unix:/path')."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        return rest.rpartition(":")[0].strip("[]")
    return rest or peer


async def _abort(context: Any, exc: BaseException, status: int | None = None) -> Any:
    status = status_for(exc) if status is None else status
    if status >= 500 and not isinstance(exc, ServingError):
        log.error("request failed", exc_info=exc)
    # Retry-After of a 429 or 503 travels as trailing metadata (gRPC has no such header)
    retry = exc.headers.get("Retry-After") if isinstance(exc, ServingError) else None
    trailers = (("retry-after", retry),) if retry else ()
    await context.abort(grpc_code(status), error_message(exc, status), trailing_metadata=trailers)


class Health(health_pb2_grpc.HealthServicer):  # type: ignore[misc]  # grpc_health is untyped
    """grpc.health.v1.Health from the data plane's state, computed at each call."""

    WATCH_INTERVAL_S = 1.0

    def __init__(self, data_plane: DataPlane) -> None:
        self._dp = data_plane

    def status(self, service: str) -> int | None:
        """The serving status of `service`, None for a service this server does not know."""
        serving: int = health_pb2.HealthCheckResponse.SERVING
        not_serving: int = health_pb2.HealthCheckResponse.NOT_SERVING
        if service in ("", SERVICE_NAME):
            return serving if self._dp.ready() else not_serving
        if service == "live":
            return serving
        if service == "started":
            return serving if self._dp.started() else not_serving
        return None

    async def Check(self, request: health_pb2.HealthCheckRequest, context: Any) -> health_pb2.HealthCheckResponse:
        status = self.status(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {quote(request.service)}")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: Any
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        """The status now, then each change (SERVICE_UNKNOWN for an unknown service, as the protocol says)."""
        last: int | None = -1
        while True:
            status = self.status(request.service)
            if status is None:
                status = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
            if status != last:
                last = status
                yield health_pb2.HealthCheckResponse(status=status)
            await asyncio.sleep(self.WATCH_INTERVAL_S)  # poll: the data plane has no change events


RPCS: dict[str, tuple[Any, Any]] = {
    "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
    "ServerMetadata": (pb.ServerMetadataRequest, pb.ServerMetadataResponse),
    "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
    "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse),
}
"""The protocol's RPCs: request and response messages (as in the generated GRPCInferenceServiceServicer)."""


@dataclass(frozen=True, slots=True)
class Malformed:
    """Bytes that do not parse as the RPC's request message."""

    message: str
    error: str


def _parser(message_type: Any) -> Callable[[bytes], Any]:
    """A request deserializer that hands bad bytes to the handler (INVALID_ARGUMENT) instead of
    raising inside grpc (which logs a traceback and answers INTERNAL)."""
    name = message_type.DESCRIPTOR.full_name

    def parse(data: bytes) -> Any:
        try:
            return message_type.FromString(data)
        except DecodeError as exc:
            return Malformed(name, str(exc))

    return parse


def _guarded(method: Callable[[Any, Any], Awaitable[Any]]) -> Callable[[Any, Any], Awaitable[Any]]:
    async def handle(request: Any, context: Any) -> Any:
        if isinstance(request, Malformed):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {request.message}: {request.error}")
        return await method(request, context)

    return handle


def inference_handler(servicer: InferenceServicer) -> Any:
    """The GRPCInferenceService's generic handler over `servicer`, with forgiving deserializers."""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            _guarded(getattr(servicer, name)),
            request_deserializer=_parser(request),
            response_serializer=response.SerializeToString,
        )
        for name, (request, response) in RPCS.items()
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


def listen_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def start_grpc_server(
    data_plane: DataPlane, host: str, port: int, max_message_bytes: int, budget: ByteBudget | None = None
) -> tuple[grpc.aio.Server, int]:
    """The gRPC listener on the running event loop, started; returns it and its bound port.

    Messages over `max_message_bytes` get RESOURCE_EXHAUSTED from grpc itself. SO_REUSEPORT is off,
    so a port in use is an error, not a second listener sharing it. Raises RuntimeError when the
    port cannot be bound.
    """
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),
        ]
    )
    server.add_generic_rpc_handlers((inference_handler(InferenceServicer(data_plane, budget)),))
    health_pb2_grpc.add_HealthServicer_to_server(Health(data_plane), server)
    bound = server.add_insecure_port(listen_address(host, port))
    if bound == 0:
        raise RuntimeError(f"cannot serve gRPC on {host}:{port}")
    await server.start()
    return server, bound
