"""From a verified package directory to a loaded, warmed-up model."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from mlmodel_runtime.backends import load_backend
from mlmodel_runtime.backends.base import Backend, Signature, TensorSpec, dummy_inputs
from mlmodel_runtime.backends.errors import ModelLoadError
from mlmodel_runtime.package import (
    MANIFEST_FILE,
    METADATA_FILE,
    FormatNotAllowed,
    FormatUnsupported,
    Metadata,
    ModelFormat,
    parse_manifest,
    parse_metadata,
)
from mlmodel_runtime.package import TensorSpec as PackageTensorSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model ready to serve: its identity, signature and backend."""

    name: str
    """The name it is served under (MLMODEL_MODEL_NAME), not necessarily metadata.json's."""
    version: str
    format: str
    signature: Signature
    backend: Backend
    load_seconds: float = 0.0


def signature_of(metadata: Metadata) -> Signature:
    def specs(tensors: tuple[PackageTensorSpec, ...]) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec(t.name, t.datatype.value, tuple(t.shape)) for t in tensors)

    return Signature(specs(metadata.inputs), specs(metadata.outputs))


def resolve_format(metadata_format: str, override: str, allow_pickle: bool) -> str:
    """The format to load: the override when set; pickle-based ones only when allowed."""
    name = override or metadata_format
    try:
        fmt = ModelFormat(name)
    except ValueError:
        known = ", ".join(f.value for f in ModelFormat)
        raise FormatUnsupported(f"format {name!r} is not supported (known: {known})") from None
    if fmt.is_pickle and not allow_pickle:
        raise FormatNotAllowed(
            f"format {name!r} is pickle-based and can run code when loaded; "
            "set allowPickle / MLMODEL_ALLOW_PICKLE=true to serve it"
        )
    return fmt.value


def load_model(
    model_dir: Path,
    *,
    served_name: str,
    format_override: str = "",
    allow_pickle: bool = False,
    device: str = "auto",
    intra_op_threads: int = 0,
    inter_op_threads: int = 0,
    warmup_rows: tuple[int, ...] = (1,),
) -> LoadedModel:
    """Read metadata.json and the manifest's entrypoint from `model_dir`, load and warm up the model."""
    started = time.perf_counter()
    metadata = parse_metadata((model_dir / METADATA_FILE).read_bytes())
    manifest = parse_manifest((model_dir / MANIFEST_FILE).read_bytes())
    fmt = resolve_format(metadata.format.value, format_override, allow_pickle)
    signature = signature_of(metadata)
    backend = load_backend(
        fmt,
        model_dir / manifest.entrypoint,
        signature,
        device=device,
        intra_op_threads=intra_op_threads,
        inter_op_threads=inter_op_threads,
    )
    loaded = time.perf_counter()
    for rows in dict.fromkeys(warmup_rows if signature.batchable else (1,)):
        warm_up(backend, signature, rows)
    log.info(
        "model loaded",
        extra={
            "format": fmt,
            "device": backend.device,
            "load_s": round(loaded - started, 3),
            "warmup_s": round(time.perf_counter() - loaded, 3),
        },
    )
    return LoadedModel(served_name, metadata.version, fmt, signature, backend, time.perf_counter() - started)


def warm_up(backend: Backend, signature: Signature, rows: int = 1) -> None:
    """Run one zero-filled batch; the model must return every declared output."""
    names = [t.name for t in signature.outputs]
    try:
        outputs = backend.predict(dummy_inputs(signature, rows), names)
    except Exception as exc:
        raise ModelLoadError(f"warm-up with a zero-filled batch of {rows} row(s) failed: {exc}") from exc
    missing = [n for n in names if n not in outputs]
    if missing:
        raise ModelLoadError(f"warm-up returned no output {', '.join(missing)}")
