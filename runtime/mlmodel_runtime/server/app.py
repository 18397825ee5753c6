"""The app factory: `create_app(settings, data_plane)` wires routes, error bodies and /metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlmodel_runtime.server.admission import ByteBudget, default_budget, memory_limit
from mlmodel_runtime.server.dataplane import SERVER_NAME, DataPlane
from mlmodel_runtime.server.endpoints import Endpoints, InferEndpoint, InferFastPath, json_response
from mlmodel_runtime.settings import ServeSettings

log = logging.getLogger(__name__)

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


@asynccontextmanager
async def _stop_on_exit(app: FastAPI) -> AsyncIterator[None]:
    yield
    app.state.data_plane.stop()


def request_budget(settings: ServeSettings) -> int:
    """The byte budget of the requests in flight: configured, or derived from the memory limit."""
    return settings.request_budget_bytes or default_budget(memory_limit())


def create_app(
    settings: ServeSettings,
    data_plane: DataPlane,
    *,
    registry: CollectorRegistry | None = None,
    lifespan: Lifespan | None = None,
) -> FastAPI:
    """The V2 REST app. `/metrics` is mounted here only when MLMODEL_METRICS_PORT is 0."""
    app = FastAPI(
        title=SERVER_NAME,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan or _stop_on_exit,
    )
    app.state.data_plane = data_plane
    e = Endpoints(data_plane, settings.max_request_bytes)
    routes: list[tuple[str, Callable[[Request], object], str]] = [
        ("/v2", e.server_metadata, "GET"),
        ("/v2/health/live", e.live, "GET"),
        ("/v2/health/ready", e.ready, "GET"),
        ("/v2/health/startup", e.startup, "GET"),
        ("/v2/models/{name}", e.model_metadata, "GET"),
        ("/v2/models/{name}/versions/{version}", e.model_metadata, "GET"),
        ("/v2/models/{name}/ready", e.model_ready, "GET"),
        ("/v2/models/{name}/versions/{version}/ready", e.model_ready, "GET"),
    ]
    for path, handler, method in routes:
        app.router.add_route(path, handler, methods=[method], include_in_schema=False)  # type: ignore[arg-type]
    budget = ByteBudget(request_budget(settings), settings.request_budget_wait_ms / 1000.0)
    log.info("request byte budget", extra={"budget_bytes": budget.capacity, "max_wait_s": budget.max_wait_s})
    data_plane.metrics.track_request_budget(lambda: budget.used, budget.capacity)
    app.state.request_budget = budget  # shared with the gRPC listener
    infer = InferEndpoint(data_plane, settings.max_request_bytes, budget)
    for path in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"):
        # an ASGI app as endpoint: Starlette calls it as is (answers 405 to other methods)
        app.router.routes.append(Route(path, infer, methods=["POST"], include_in_schema=False))
    # the hot path skips FastAPI's middleware stack and the router (see endpoints.py)
    app.add_middleware(InferFastPath, endpoint=infer)
    if registry is not None and settings.metrics_port == 0:
        exposition = registry

        async def metrics(request: Request) -> Response:
            return Response(generate_latest(exposition), media_type=CONTENT_TYPE_LATEST)

        app.router.add_route("/metrics", metrics, methods=["GET"], include_in_schema=False)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return json_response({"error": f"{exc.detail}: {request.method} {request.url.path}"}, exc.status_code)

    app.add_exception_handler(HTTPException, http_error)
    return app
