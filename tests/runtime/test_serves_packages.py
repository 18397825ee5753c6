"""A real runtime process serves packages from the object store (ONNX, TorchScript, torch.export, a
.zip archive) and from a local directory: predictions equal the framework run in-process; the V2
health, server and model metadata endpoints answer; start-up logs are JSON lines that carry the
model name and revision."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.runtime.conftest import Serve, mlp_package
from tests.runtime.models import json_body
from tests.support.packages import archive_package, reference_mlp, upload_dir, upload_file

X = np.array([[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 3.0], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)


def in_process(fmt: str, package: Path, x: np.ndarray) -> np.ndarray:
    """The framework's own answer, loaded from the package's model file."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(package / "model.onnx"), providers=["CPUExecutionProvider"])
        return np.asarray(session.run(["output"], {"input": x})[0])
    import torch

    with torch.inference_mode():
        if fmt == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still served
                module: Any = torch.jit.load(str(package / "model.pt"))  # type: ignore[no-untyped-call]
        else:
            module = torch.export.load(str(package / "model.pt2")).module()
        return np.asarray(module(torch.from_numpy(x)).numpy())


def predict(server: Any, x: np.ndarray) -> np.ndarray:
    response = server.infer(json_body({"input": x}))
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    assert output["name"] == "output"
    assert output["datatype"] == "FP32"
    return np.array(output["data"], dtype=np.float32).reshape(output["shape"])


@pytest.mark.objectstore
@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "torch-export"])
def test_a_package_in_the_store_serves_what_the_framework_computes(
    fmt: str, tmp_path: Path, s3: Any, s3_env: dict[str, str], bucket: str, serve: Serve
) -> None:
    package = mlp_package(tmp_path, fmt)
    uri = upload_dir(s3, bucket, f"mlp/{fmt}", package)
    server = serve(uri, env=s3_env, model_revision="4")

    got = predict(server, X)
    np.testing.assert_array_equal(got, in_process(fmt, package, X).astype(np.float32))
    np.testing.assert_allclose(got, reference_mlp(X), rtol=1e-5, atol=1e-5)

    platform = {"onnx": "onnxruntime_onnx", "torchscript": "pytorch_libtorch", "torch-export": "pytorch_torch_export"}
    metadata = server.get("/v2/models/mlp").json()
    assert metadata == {
        "name": "mlp",
        "versions": ["1"],
        "platform": platform[fmt],
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "output", "datatype": "FP32", "shape": [-1, 2]}],
    }
    info = server.metric("mlmodel_runtime_model_info", model="mlp", revision="4")
    assert info == 1.0
    assert server.metric("mlmodel_runtime_model_load_duration_seconds", model="mlp", revision="4") > 0


@pytest.mark.objectstore
def test_a_zip_archive_in_the_store_is_served(
    tmp_path: Path, s3: Any, s3_env: dict[str, str], bucket: str, serve: Serve
) -> None:
    archive = archive_package(mlp_package(tmp_path, "onnx"), "zip")
    server = serve(upload_file(s3, bucket, "archives/mlp.zip", archive), env=s3_env)
    np.testing.assert_allclose(predict(server, X), reference_mlp(X), rtol=1e-5, atol=1e-5)


def test_a_local_directory_is_served_in_place_with_honest_probes(onnx_package: Path, serve: Serve) -> None:
    server = serve(onnx_package, model_revision="7")

    assert server.get("/v2/health/live").json() == {"live": True}
    assert server.get("/v2/health/startup").status_code == 200
    assert server.get("/v2/health/ready").json() == {"ready": True}
    assert server.get("/v2/models/mlp/ready").json() == {"name": "mlp", "ready": True}
    assert server.get("/v2/models/mlp/versions/1/ready").status_code == 200
    assert server.get("/v2/models/mlp/versions/1").json()["versions"] == ["1"]
    meta = server.get("/v2").json()
    assert meta["name"] == "mlmodel-runtime"
    assert "binary_tensor_data" in meta["extensions"]
    np.testing.assert_allclose(predict(server, X[:1]), reference_mlp(X[:1]), rtol=1e-5, atol=1e-5)
    assert list((Path(server.log_path).parent).glob("models-*/sha256-*")) == []  # nothing copied

    records = server.log_records()
    assert records, "the runtime logged nothing"
    assert all(r["model"] == "mlp" and r["revision"] == "7" for r in records)
    assert {"package verified", "model loaded", "model ready"} <= {r["message"] for r in records}
