"""Probes on the runtime's endpoints (docs/contracts.md section 3), with a startup budget that
grows with the package: a 20 GB model needs longer to download and verify than a 2 MB one."""

from __future__ import annotations

import math
from typing import Any

from mlmodel_operator import names
from mlmodel_operator.config import Startup
from mlmodel_operator.spec import Protocol


def startup_budget_seconds(package_size: int, startup: Startup) -> int:
    """Seconds the runtime may take to download, verify, load and warm up the package."""
    transfer = math.ceil(package_size / startup.bytes_per_second)
    return min(startup.max_seconds, startup.base_seconds + transfer)


def _http_get(path: str) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http", "scheme": "HTTP"}}


def _grpc(service: str) -> dict[str, Any]:
    """A native gRPC probe (grpc.health.v1 Check) on the runtime's gRPC port (a number: no named ports);
    the service always written, "" too, as the API server stores it."""
    return {"grpc": {"port": names.GRPC_PORT, "service": service}}


def probes(
    model_name: str, package_size: int, startup: Startup, protocol: Protocol = "http"
) -> dict[str, dict[str, Any]]:
    """startupProbe, readinessProbe and livenessProbe of the runtime container, over REST or gRPC.

    Liveness and readiness only start once the startup probe has passed, so they can be strict
    without killing a pod that is still downloading its model.
    """
    budget = startup_budget_seconds(package_size, startup)
    if protocol == "grpc":
        started, ready, live = _grpc("started"), _grpc(""), _grpc("live")
    else:
        started, ready, live = (
            _http_get("/v2/health/startup"), _http_get(f"/v2/models/{model_name}/ready"), _http_get("/v2/health/live")
        )
    return {
        "startupProbe": {
            **started,
            "periodSeconds": startup.period_seconds,
            "timeoutSeconds": 2,
            "failureThreshold": math.ceil(budget / startup.period_seconds),
        },
        "readinessProbe": {
            **ready,
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            **live,
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
    }
