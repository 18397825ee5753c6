"""Test models of the runtime's own tests (the shared MLPs are in tests/support/packages.py):
a deliberately slow ONNX model whose cost grows with the rows sent, an ONNX model that echoes one
tensor of every datatype, and request bodies for them."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

SLOW_WIDTH = 1024
# V2 datatype -> (onnx TensorProto enum name, numpy dtype); BYTES is onnx STRING
ECHO_TYPES: dict[str, tuple[str, Any]] = {
    "BOOL": ("BOOL", np.bool_),
    "UINT8": ("UINT8", np.uint8),
    "UINT16": ("UINT16", np.uint16),
    "UINT32": ("UINT32", np.uint32),
    "UINT64": ("UINT64", np.uint64),
    "INT8": ("INT8", np.int8),
    "INT16": ("INT16", np.int16),
    "INT32": ("INT32", np.int32),
    "INT64": ("INT64", np.int64),
    "FP16": ("FLOAT16", np.float16),
    "FP32": ("FLOAT", np.float32),
    "FP64": ("DOUBLE", np.float64),
    "BYTES": ("STRING", np.object_),
}


def make_slow_onnx(path: Path, depth: int = 200) -> Path:
    """`input` [-1, 1024] -> `output` [-1, 1024]: `depth` chained 1024x1024 MatMuls with the identity
    matrix, so output == input and each row costs depth * 2 MFLOP (512 rows: about a second here)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    eye = numpy_helper.from_array(np.eye(SLOW_WIDTH, dtype=np.float32), "eye")
    nodes, prev = [], "input"
    for i in range(depth):
        out = "output" if i == depth - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [prev, "eye"], [out]))
        prev = out
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", SLOW_WIDTH])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", SLOW_WIDTH])],
        initializer=[eye],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def slow_signature() -> dict[str, Any]:
    return {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, SLOW_WIDTH]}],
        "outputs": [{"name": "output", "datatype": "FP32", "shape": [-1, SLOW_WIDTH]}],
    }


def make_echo_onnx(path: Path) -> Path:
    """`in_<TYPE>` [-1, 2] -> `out_<TYPE>` (Identity) for every V2 datatype."""
    import onnx
    from onnx import TensorProto, helper

    inputs, outputs, nodes = [], [], []
    for name, (proto, _) in ECHO_TYPES.items():
        elem = getattr(TensorProto, proto)
        inputs.append(helper.make_tensor_value_info(f"in_{name}", elem, ["batch", 2]))
        outputs.append(helper.make_tensor_value_info(f"out_{name}", elem, ["batch", 2]))
        nodes.append(helper.make_node("Identity", [f"in_{name}"], [f"out_{name}"]))
    graph = helper.make_graph(nodes, "echo", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def echo_signature() -> dict[str, Any]:
    return {
        "inputs": [{"name": f"in_{t}", "datatype": t, "shape": [-1, 2]} for t in ECHO_TYPES],
        "outputs": [{"name": f"out_{t}", "datatype": t, "shape": [-1, 2]} for t in ECHO_TYPES],
    }


def echo_values(rows: int = 2) -> dict[str, np.ndarray]:
    """One test array per datatype, with values at the edges of each type's range."""
    values: dict[str, np.ndarray] = {}
    for name, (_, dtype) in ECHO_TYPES.items():
        if name == "BOOL":
            arr = np.array([[True, False]] * rows)
        elif name == "BYTES":
            arr = np.array([[b"caf\xc3\xa9", b""]] * rows, dtype=np.object_)
        elif np.dtype(dtype).kind in "iu":
            info = np.iinfo(dtype)
            arr = np.array([[info.min, info.max]] * rows, dtype=dtype)
        else:
            arr = np.array([[0.5, -1.25]] * rows, dtype=dtype)
        values[name] = arr
    return values


def json_body(inputs: dict[str, np.ndarray], **top: Any) -> bytes:
    """A V2 JSON request body (BYTES as UTF-8 strings)."""
    tensors = []
    for name, arr in inputs.items():
        data = [v.decode() for v in arr.reshape(-1)] if arr.dtype == np.object_ else arr.reshape(-1).tolist()
        tensors.append({"name": name, "shape": list(arr.shape), "datatype": _datatype(arr), "data": data})
    return json.dumps({"inputs": tensors, **top}).encode()


def binary_body(inputs: dict[str, np.ndarray], **top: Any) -> tuple[bytes, dict[str, str]]:
    """A V2 body with every input as binary data, and the headers it needs."""
    tensors, chunks = [], []
    for name, arr in inputs.items():
        if arr.dtype == np.object_:  # BYTES: each element as a 4-byte little-endian length + bytes
            raw = b"".join(struct.pack("<I", len(v)) + v for v in arr.reshape(-1))
        else:
            raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        tensors.append(
            {
                "name": name,
                "shape": list(arr.shape),
                "datatype": _datatype(arr),
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        chunks.append(raw)
    header = json.dumps({"inputs": tensors, **top}).encode()
    return header + b"".join(chunks), {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }


def _datatype(arr: np.ndarray) -> str:
    from mlmodel_runtime.backends.base import datatype_of

    return datatype_of(arr.dtype)
