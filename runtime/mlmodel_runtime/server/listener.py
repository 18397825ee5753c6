"""uvicorn for the runtime: its configuration and a Server that drains on SIGTERM."""

from __future__ import annotations

import math
import signal
from collections.abc import Callable
from types import FrameType

import uvicorn
from fastapi import FastAPI

from mlmodel_runtime.settings import ServeSettings


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


def listener_config(settings: ServeSettings, app: FastAPI) -> uvicorn.Config:
    """uvloop + httptools, no access log, logging left to mlmodel_runtime.logs."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=max(1, math.ceil(settings.graceful_shutdown_s)),
        backlog=2048,
    )
