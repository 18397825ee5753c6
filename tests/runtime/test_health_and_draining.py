"""Health that means something, on the app in-process (real FastAPI app, data plane and onnxruntime
model, no server process): before the model is there startup, readiness and inference answer 503
(with the load failure when there is one) while liveness is 200; once attached everything is 200;
while draining readiness is 503 but requests that arrive are still served; with metrics port 0,
/metrics is on the main port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from mlmodel_runtime.backends.loading import LoadedModel, load_model
from mlmodel_runtime.metrics import RuntimeMetrics
from mlmodel_runtime.server.app import create_app
from mlmodel_runtime.server.dataplane import DataPlane
from mlmodel_runtime.settings import ServeSettings
from prometheus_client import CollectorRegistry

from tests.runtime.models import json_body
from tests.support.packages import reference_mlp

X = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)


@pytest.fixture
def model(onnx_package: Path) -> LoadedModel:
    return load_model(onnx_package, served_name="mlp", intra_op_threads=1)


@pytest.fixture
async def plane_and_client() -> AsyncIterator[tuple[DataPlane, httpx.AsyncClient]]:
    settings = ServeSettings(package="unused", model_name="mlp", metrics_port=0)
    registry = CollectorRegistry()
    plane = DataPlane("mlp", RuntimeMetrics(registry).for_model("mlp", "5"))
    app = create_app(settings, plane, registry=registry)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://runtime") as client:
        yield plane, client
    plane.stop()


async def statuses(client: httpx.AsyncClient) -> dict[str, int]:
    paths = ["/v2/health/live", "/v2/health/startup", "/v2/health/ready", "/v2/models/mlp/ready", "/v2/models/mlp"]
    result = {p: (await client.get(p)).status_code for p in paths}
    result["infer"] = (await client.post("/v2/models/mlp/infer", content=json_body({"input": X}))).status_code
    return result


async def test_before_the_model_is_loaded_only_liveness_passes(
    plane_and_client: tuple[DataPlane, httpx.AsyncClient],
) -> None:
    plane, client = plane_and_client
    assert await statuses(client) == {
        "/v2/health/live": 200,
        "/v2/health/startup": 503,
        "/v2/health/ready": 503,
        "/v2/models/mlp/ready": 503,
        "/v2/models/mlp": 503,
        "infer": 503,
    }
    loading = await client.post("/v2/models/mlp/infer", content=b"{}")
    assert loading.json() == {"error": "model 'mlp' is loading"}
    assert loading.headers["retry-after"] == "1"  # every 503 says when to come back
    plane.failure = RuntimeError("disk on fire")
    failed = await client.post("/v2/models/mlp/infer", content=b"{}")
    assert failed.json() == {"error": "model 'mlp' failed to load: disk on fire"}


async def test_attached_it_serves_and_while_draining_it_is_not_ready_but_still_serves(
    plane_and_client: tuple[DataPlane, httpx.AsyncClient], model: LoadedModel
) -> None:
    plane, client = plane_and_client
    plane.attach(model)
    assert set((await statuses(client)).values()) == {200}

    plane.start_draining()
    assert await statuses(client) == {
        "/v2/health/live": 200,
        "/v2/health/startup": 200,
        "/v2/health/ready": 503,
        "/v2/models/mlp/ready": 503,
        "/v2/models/mlp": 200,
        "infer": 200,
    }
    response = await client.post("/v2/models/mlp/infer", content=json_body({"input": X}))
    np.testing.assert_allclose(response.json()["outputs"][0]["data"], reference_mlp(X).reshape(-1), rtol=1e-5)


async def test_metrics_port_0_serves_metrics_on_the_main_port(
    plane_and_client: tuple[DataPlane, httpx.AsyncClient], model: LoadedModel
) -> None:
    plane, client = plane_and_client
    plane.attach(model)
    await client.post("/v2/models/mlp/infer", content=json_body({"input": X}))
    page = (await client.get("/metrics")).text
    assert 'mlmodel_runtime_requests_total{code="200",model="mlp",protocol="rest",revision="5"} 1.0' in page
    assert 'mlmodel_runtime_model_info{device="cpu",format="onnx",model="mlp",revision="5"} 1.0' in page
