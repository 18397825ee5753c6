"""The committed gRPC stubs (runtime/mlmodel_runtime/server/oip/*_pb2*.py, .pyi) are what grpcio-tools
generates from the committed grpc_predict_v2.proto (`make protos` regenerates them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

OIP = Path(__file__).resolve().parents[2] / "runtime" / "mlmodel_runtime" / "server" / "oip"
GENERATED = ("grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2.pyi", "grpc_predict_v2_pb2_grpc.py")


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    package = tmp_path / "mlmodel_runtime" / "server" / "oip"
    package.mkdir(parents=True)
    shutil.copy(OIP / "grpc_predict_v2.proto", package)
    proto = "mlmodel_runtime/server/oip/grpc_predict_v2.proto"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I.", "--python_out=.", "--pyi_out=.", "--grpc_python_out=.",
         proto],
        cwd=tmp_path,
        check=True,
        timeout=60,
    )
    for name in GENERATED:
        assert (package / name).read_text() == (OIP / name).read_text(), f"{name} is stale: run `make protos`"
