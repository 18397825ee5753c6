"""Fixtures of the runtime tests: a factory of real runtime processes (stopped after each test) and
small model packages built by the tests (ONNX, TorchScript, torch.export MLPs; slow and echo models)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.models import echo_signature, make_echo_onnx, make_slow_onnx, slow_signature
from tests.runtime.process import RuntimeServer, start_server
from tests.support.packages import (
    build_package,
    make_onnx_mlp,
    make_torch_export_mlp,
    make_torchscript_mlp,
    mlp_signature,
)

EXTRA_FILES = {"README.md": "# test model\n", "requirements.txt": "onnxruntime\n"}
Serve = Callable[..., RuntimeServer]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """start_server(package, ...) bound to this test's directory; every server is stopped afterwards."""
    servers: list[RuntimeServer] = []

    def start(package: str | Path, **kwargs: Any) -> RuntimeServer:
        server = start_server(str(package), tmp_path, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def mlp_package(root: Path, fmt: str, n_in: int = 4, n_out: int = 2) -> Path:
    """A package of the shared test MLP in `fmt` (onnx, torchscript, torch-export)."""
    makers = {
        "onnx": (make_onnx_mlp, "mlp.onnx"),
        "torchscript": (make_torchscript_mlp, "mlp.pt"),
        "torch-export": (make_torch_export_mlp, "mlp.pt2"),
    }
    make, filename = makers[fmt]
    model = make(root / "src" / filename, n_in=n_in, n_out=n_out)
    signature: dict[str, Any] = mlp_signature(n_in, n_out)
    return build_package(
        root / f"pkg-{fmt}",
        model,
        name="mlp",
        version="1",
        format=fmt,
        extra_files=EXTRA_FILES,
        **signature,
    )


@pytest.fixture
def onnx_package(tmp_path: Path) -> Path:
    return mlp_package(tmp_path, "onnx")


@pytest.fixture
def slow_package(tmp_path: Path) -> Path:
    model = make_slow_onnx(tmp_path / "src" / "slow.onnx")
    return build_package(
        tmp_path / "pkg-slow",
        model,
        name="slow",
        version="1",
        format="onnx",
        extra_files=EXTRA_FILES,
        **slow_signature(),
    )


def echo_package_in(root: Path) -> Path:
    """A package of the echo model (one tensor of every datatype, returned as is)."""
    model = make_echo_onnx(root / "src" / "echo.onnx")
    return build_package(
        root / "pkg-echo",
        model,
        name="echo",
        version="1",
        format="onnx",
        extra_files=EXTRA_FILES,
        **echo_signature(),
    )


@pytest.fixture
def echo_package(tmp_path: Path) -> Path:
    return echo_package_in(tmp_path)
