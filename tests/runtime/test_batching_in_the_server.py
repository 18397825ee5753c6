"""Dynamic batching in a real runtime (MLMODEL_MAX_BATCH_SIZE / MLMODEL_MAX_BATCH_DELAY_MS):
concurrent requests of different row counts are merged into fewer model runs, every client still
gets exactly its own rows back, and the batch-size histogram shows it; a package whose signature
has no batch dimension is served with batching off."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from tests.runtime.conftest import Serve
from tests.runtime.models import json_body
from tests.support.packages import build_package, make_onnx_mlp, reference_mlp


def test_concurrent_requests_are_merged_and_split_back(onnx_package: Path, serve: Serve) -> None:
    server = serve(onnx_package, max_batch_size=16, max_batch_delay_ms=300)
    labels = {"model": "mlp", "revision": ""}
    rng = np.random.default_rng(3)
    batches = [rng.standard_normal((1 + i % 3, 4)).astype(np.float32) for i in range(8)]

    def call(x: np.ndarray) -> np.ndarray:
        response = httpx.post(f"{server.base_url}/v2/models/mlp/infer", content=json_body({"input": x}), timeout=60)
        assert response.status_code == 200, response.text
        output = response.json()["outputs"][0]
        return np.array(output["data"], np.float32).reshape(output["shape"])

    with ThreadPoolExecutor(len(batches)) as pool:
        results = list(pool.map(call, batches))
    for x, y in zip(batches, results, strict=True):
        assert y.shape == (x.shape[0], 2)
        np.testing.assert_allclose(y, reference_mlp(x), rtol=1e-5, atol=1e-5)
    runs = server.metric("mlmodel_runtime_batch_size_count", **labels)
    assert server.metric("mlmodel_runtime_batch_size_sum", **labels) == sum(len(x) for x in batches) == 15
    assert 1 <= runs < len(batches)
    assert server.metric("mlmodel_runtime_inference_duration_seconds_count", **labels) == runs
    assert server.metric("mlmodel_runtime_queue_duration_seconds_count", **labels) == len(batches)


def test_a_signature_without_a_batch_dimension_turns_batching_off(tmp_path: Path, serve: Serve) -> None:
    model = make_onnx_mlp(tmp_path / "src" / "mlp.onnx")
    fixed = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4]}],
        "outputs": [{"name": "output", "datatype": "FP32", "shape": [1, 2]}],
    }
    package = build_package(tmp_path / "fixed", model, name="fixed", version="1", format="onnx", **fixed)  # type: ignore[arg-type]
    server = serve(package, model="fixed", max_batch_size=8, max_batch_delay_ms=10)
    x = np.ones((1, 4), np.float32)
    response = server.infer(json_body({"input": x}))
    assert response.status_code == 200
    np.testing.assert_allclose(response.json()["outputs"][0]["data"], reference_mlp(x).reshape(-1), rtol=1e-5)
    ready = next(r for r in server.log_records() if r["message"] == "model ready")
    assert ready["batching"] is False
    assert any("dynamic batching is off" in r["message"] for r in server.log_records())
