"""Model packages for everyone's tests: tiny deterministic models, packing, upload, tampering.

- `make_onnx_mlp(path)`: a 2-layer MLP (`input` [-1, n_in] FP32 -> `output` [-1, n_out] FP32)
  built with onnx.helper, weights from a seeded RNG, no downloads; `reference_mlp(x)` computes
  the same function in numpy. `make_torchscript_mlp` / `make_torch_export_mlp` save the same
  weights in the torch formats (torch is imported only by them).
- `build_package(dir, model_file, **metadata)`: a valid package directory via `packing.pack`.
- `upload_dir(s3, bucket, prefix, dir)`, `upload_file(...)`: put a package into the store.
- `corrupt_file`, `truncate_file`, `edit_metadata`, `write_manifest`: break packages on purpose.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from mlmodel_runtime.package.models import MANIFEST_FILE, METADATA_FILE, SCHEMA_VERSION, ModelFormat
from mlmodel_runtime.packing import pack

MLP_INPUT = "input"
MLP_OUTPUT = "output"


def mlp_weights(
    n_in: int = 4, hidden: int = 8, n_out: int = 2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(w1 [n_in, hidden], b1 [hidden], w2 [hidden, n_out], b2 [n_out]) as float32, from `seed`."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((n_in, hidden)).astype(np.float32)
    b1 = rng.standard_normal(hidden).astype(np.float32)
    w2 = rng.standard_normal((hidden, n_out)).astype(np.float32)
    b2 = rng.standard_normal(n_out).astype(np.float32)
    return w1, b1, w2, b2


def reference_mlp(x: np.ndarray, n_in: int = 4, hidden: int = 8, n_out: int = 2, seed: int = 0) -> np.ndarray:
    """What the MLP models compute: relu(x @ w1 + b1) @ w2 + b2, in float32."""
    w1, b1, w2, b2 = mlp_weights(n_in, hidden, n_out, seed)
    h = np.maximum(x.astype(np.float32) @ w1 + b1, 0)
    out: np.ndarray = h @ w2 + b2
    return out


def mlp_signature(n_in: int = 4, n_out: int = 2) -> dict[str, list[dict[str, Any]]]:
    """The MLP's `inputs` / `outputs` as metadata.json holds them (for formats that omit them)."""
    return {
        "inputs": [{"name": MLP_INPUT, "datatype": "FP32", "shape": [-1, n_in]}],
        "outputs": [{"name": MLP_OUTPUT, "datatype": "FP32", "shape": [-1, n_out]}],
    }


def make_onnx_mlp(path: Path, n_in: int = 4, hidden: int = 8, n_out: int = 2, seed: int = 0) -> Path:
    """Write the MLP as ONNX (opset 17, IR 9: loadable by every onnxruntime we use)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w1, b1, w2, b2 = mlp_weights(n_in, hidden, n_out, seed)
    inits = [
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(b1, "b1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(b2, "b2"),
    ]
    nodes = [
        helper.make_node("MatMul", [MLP_INPUT, "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
        helper.make_node("Add", ["h3", "b2"], [MLP_OUTPUT]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info(MLP_INPUT, TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info(MLP_OUTPUT, TensorProto.FLOAT, ["batch", n_out])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _torch_mlp(n_in: int, hidden: int, n_out: int, seed: int) -> Any:
    import torch

    w1, b1, w2, b2 = mlp_weights(n_in, hidden, n_out, seed)
    first, second = torch.nn.Linear(n_in, hidden), torch.nn.Linear(hidden, n_out)
    with torch.no_grad():
        first.weight.copy_(torch.from_numpy(w1.T.copy()))
        first.bias.copy_(torch.from_numpy(b1))
        second.weight.copy_(torch.from_numpy(w2.T.copy()))
        second.bias.copy_(torch.from_numpy(b2))
    model = torch.nn.Sequential(first, torch.nn.ReLU(), second)
    return model.eval()


def make_torchscript_mlp(path: Path, n_in: int = 4, hidden: int = 8, n_out: int = 2, seed: int = 0) -> Path:
    """Write the MLP as TorchScript (`model.pt`); its signature must go into metadata.json."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # torch 2.10+ deprecates TorchScript; the format is still in the contract.
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(_torch_mlp(n_in, hidden, n_out, seed)).save(str(path))
    return path


def make_torch_export_mlp(path: Path, n_in: int = 4, hidden: int = 8, n_out: int = 2, seed: int = 0) -> Path:
    """Write the MLP as a torch.export program (`model.pt2`) with a dynamic batch dimension."""
    import torch

    model = _torch_mlp(n_in, hidden, n_out, seed)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    program = torch.export.export(model, (torch.zeros(2, n_in),), dynamic_shapes=({0: batch},))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(path))
    return path


def build_package(
    directory: Path,
    model_file: Path,
    *,
    extra_files: Mapping[str, bytes | str] | None = None,
    archive: str | None = None,
    **metadata: Any,
) -> Path:
    """A valid package in `directory` holding `model_file` (copied as `model.<ext>`).

    `metadata` keys (name, version, format, inputs, outputs, training, ...) go into
    metadata.json; `mlmodel pack` fills in the rest. `extra_files` (path -> content) are added
    first, e.g. {"README.md": "..."}. Returns the directory, or the archive when `archive` is
    "zip" or "tar.gz" (written beside the directory as `<dir>.zip` / `<dir>.tar.gz`).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fmt = ModelFormat.from_filename(model_file.name)
    target = model_file.name if model_file.name.startswith("model.") or fmt is None else fmt.default_file
    shutil.copyfile(model_file, directory / target)
    for rel, content in (extra_files or {}).items():
        dest = directory / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content.encode() if isinstance(content, str) else content)
    flags = {k: metadata.pop(k) for k in ("name", "version", "format") if k in metadata}
    if metadata:
        (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    given = {k: str(v) for k, v in flags.items()}
    result = pack(directory, name=given.get("name"), version=given.get("version"), format=given.get("format"),
                  archive=archive)
    return result.archive if result.archive else directory


def archive_package(directory: Path, kind: str) -> Path:
    """Pack an existing package directory again into `<dir>.zip` / `<dir>.tar.gz`; returns it."""
    archive = pack(directory, archive=kind).archive
    assert archive is not None
    return archive


def write_manifest(directory: Path, entrypoint: str | None = None) -> str:
    """List every file of `directory` in a fresh manifest, no validation; returns the digest.

    For tests that change files on purpose and need the manifest to agree with them.
    """
    directory = Path(directory)
    if entrypoint is None:
        entrypoint = json.loads((directory / MANIFEST_FILE).read_text())["entrypoint"]
    files = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel != MANIFEST_FILE:
            data = path.read_bytes()
            files.append({"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    body = json.dumps({"schemaVersion": SCHEMA_VERSION, "entrypoint": entrypoint, "files": files}, indent=2) + "\n"
    (directory / MANIFEST_FILE).write_text(body)
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


def edit_metadata(directory: Path, *, remanifest: bool = True, drop: tuple[str, ...] = (), **changes: Any) -> None:
    """Change metadata.json's raw JSON (may make it invalid on purpose), then re-list files."""
    path = Path(directory) / METADATA_FILE
    raw = json.loads(path.read_text())
    raw.update(changes)
    for key in drop:
        raw.pop(key, None)
    path.write_text(json.dumps(raw, indent=2))
    if remanifest:
        write_manifest(directory)


def corrupt_file(directory: Path, rel: str, offset: int | None = None) -> None:
    """Flip one byte of `rel` (the middle one by default): same size, different SHA-256."""
    path = Path(directory) / rel
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate_file(directory: Path, rel: str, remove: int = 1) -> None:
    """Drop the last `remove` bytes of `rel` (a size mismatch)."""
    path = Path(directory) / rel
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - remove])


def upload_file(s3: Any, bucket: str, key: str, path: Path) -> str:
    """Put one file (an archive) into the store; returns its `s3://` URI."""
    s3.upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{key}"


def upload_dir(s3: Any, bucket: str, prefix: str, directory: Path) -> str:
    """Put every file of `directory` under `prefix` (manifest last); returns the `s3://` URI."""
    directory = Path(directory)
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.name == MANIFEST_FILE)  # a reader never sees a manifest before its files
    for path in files:
        s3.upload_file(str(path), bucket, prefix + path.relative_to(directory).as_posix())
    return f"s3://{bucket}/{prefix}"
