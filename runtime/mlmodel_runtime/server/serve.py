"""Run the server: uvicorn (uvloop + httptools) on the app, model loading in the background,
metrics on their own port, and a graceful drain on SIGTERM.

Start-up order: the listener answers at once (live 200, startup/ready 503) while a thread
fetches, verifies, loads and warms up the model; then startup and readiness turn 200. A fetch
or load failure stops the server with the contract's exit code.

SIGTERM (or SIGINT): readiness drops at once; uvicorn stops accepting connections, lets every
request it has accepted finish (up to graceful_shutdown_s), then the inference worker ends and
the process exits 0.
"""

from __future__ import annotations

import gc
import logging
import math
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType

import uvicorn
from fastapi import FastAPI
from mlmodel_runtime.backends.loading import LoadedModel, load_model
from mlmodel_runtime.fetch import EXIT_OK, exit_code_for, fetch, log_failure
from mlmodel_runtime.metrics import RuntimeMetrics
from mlmodel_runtime.server.app import create_app
from mlmodel_runtime.server.dataplane import DataPlane
from mlmodel_runtime.settings import ServeSettings
from prometheus_client import CollectorRegistry, start_http_server

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """uvicorn.Server that drops readiness before its graceful shutdown and exits 0 after it.

    (uvicorn re-raises the captured signal after shutting down, which would end the process
    with 143; a drained server has done its job, so it records nothing.)
    """

    def __init__(self, config: uvicorn.Config, on_signal: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_signal = on_signal

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_signal()
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


def model_loader(settings: ServeSettings, metrics_start: float) -> Callable[[], LoadedModel]:
    def load() -> LoadedModel:
        package = fetch(settings)
        assert package.path is not None
        warmup_rows = (1, settings.max_batch_size) if settings.batching else (1,)
        model = load_model(
            Path(package.path),
            served_name=settings.model_name,
            format_override=package.format.value,
            allow_pickle=settings.allow_pickle,
            device=settings.device,
            intra_op_threads=settings.intra_op_threads,
            inter_op_threads=settings.inter_op_threads,
            warmup_rows=warmup_rows,
        )
        # the gauge reports download + verify + load + warm-up, from process start
        return LoadedModel(
            model.name,
            model.version,
            model.format,
            model.signature,
            model.backend,
            time.monotonic() - metrics_start,
        )

    return load


def freeze_heap() -> None:
    """Keep the garbage collector off the objects that live as long as the process.

    After imports and model loading the heap holds 10^5-10^6 long-lived objects; a full
    collection walks all of them (25 ms with onnxruntime, far more with torch) and, as it comes
    every so often under load, it shows up directly in p99 latency. Frozen objects are never
    scanned again; what requests allocate is collected as usual.
    """
    gc.collect()
    gc.freeze()


def serve(settings: ServeSettings) -> int:
    """Serve until SIGTERM; returns the process exit code."""
    started = time.monotonic()
    registry = CollectorRegistry()
    metrics = RuntimeMetrics(registry).for_model(settings.model_name, settings.model_revision)
    data_plane = DataPlane(
        settings.model_name,
        metrics,
        max_batch_size=settings.max_batch_size,
        max_batch_delay_s=settings.max_batch_delay_ms / 1000.0,
        max_queue_size=settings.max_queue_size,
    )
    exit_code = EXIT_OK
    server: DrainingServer | None = None

    def failed(exc: BaseException) -> None:
        nonlocal exit_code
        log_failure("model could not be served", exc)
        exit_code = exit_code_for(exc)
        if server is not None:
            server.should_exit = True

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        data_plane.load_in_background(model_loader(settings, started), failed, freeze_heap)
        yield
        data_plane.stop()

    app = create_app(settings, data_plane, registry=registry, lifespan=lifespan)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=max(1, math.ceil(settings.graceful_shutdown_s)),
        backlog=2048,
    )
    server = DrainingServer(config, data_plane.start_draining)
    metrics_server = None
    if settings.metrics_port:
        metrics_server, _ = start_http_server(settings.metrics_port, addr=settings.host, registry=registry)
    log.info(
        "starting",
        extra={"host": settings.host, "port": settings.port, "metrics_port": settings.metrics_port},
    )
    try:
        server.run()
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
    answered = {str(code): int(n) for code, n in metrics.request_counts().items()}
    log.info("stopped", extra={"exit_code": exit_code, "requests_by_code": answered})
    return exit_code
