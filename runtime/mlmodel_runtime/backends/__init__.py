"""Framework backends behind one interface; frameworks are imported only for the format in use."""

from __future__ import annotations

from pathlib import Path

from mlmodel_runtime.backends.base import Backend, Signature
from mlmodel_runtime.backends.errors import ModelLoadError
from mlmodel_runtime.package.models import ModelFormat

FORMATS = tuple(f.value for f in ModelFormat)  # one backend per format of the package contract


def load_backend(
    format: str,
    path: Path,
    signature: Signature,
    *,
    device: str = "auto",
    intra_op_threads: int = 0,
    inter_op_threads: int = 0,
) -> Backend:
    """Load the model file at `path` with the backend for `format`."""
    if format == "onnx":
        from mlmodel_runtime.backends.onnx import OnnxBackend

        return OnnxBackend(
            path,
            signature,
            device=device,
            intra_op_threads=intra_op_threads,
            inter_op_threads=inter_op_threads,
        )
    if format == "joblib":
        from mlmodel_runtime.backends.joblib import JoblibBackend

        return JoblibBackend(path, signature, device=device)
    if format in ("torchscript", "torch-export"):
        from mlmodel_runtime.backends.torch import TorchBackend

        return TorchBackend(
            path,
            signature,
            format=format,
            device=device,
            intra_op_threads=intra_op_threads,
            inter_op_threads=inter_op_threads,
        )
    raise ModelLoadError(f"format '{format}' has no backend in this runtime (known: {', '.join(FORMATS)})")
