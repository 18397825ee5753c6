"""Fixtures of the package tests: an ObjectStore on the test store, and packed MLP packages."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlmodel_runtime.package import ObjectStore

from tests.support.packages import build_package, make_onnx_mlp

EXTRA_FILES = {"README.md": "# mlp\n", "requirements.txt": "onnxruntime\n"}


@pytest.fixture
def store(s3_env: dict[str, str]) -> ObjectStore:
    return ObjectStore(
        endpoint_url=s3_env["AWS_ENDPOINT_URL"],
        access_key=s3_env["AWS_ACCESS_KEY_ID"],
        secret_key=s3_env["AWS_SECRET_ACCESS_KEY"],
        region=s3_env["AWS_REGION"],
    )


@pytest.fixture
def mlp_dir(tmp_path: Path) -> Path:
    """A packed ONNX MLP package directory (with README.md and requirements.txt)."""
    model = make_onnx_mlp(tmp_path / "src" / "mlp.onnx")
    return build_package(tmp_path / "mlp", model, name="mlp", version="1", extra_files=EXTRA_FILES)
