"""Read a model file's input and output tensor specs, for `mlmodel pack`.

ONNX records names, element types and shapes (symbolic dimensions become -1). A torch.export
program (`.pt2`) records them in its graph. TorchScript usually records neither shapes nor
dtypes, and joblib files record nothing: for those the specs must be written into metadata.json,
and SignatureUnavailable says so. onnx and torch are imported only when needed (they live
outside `mlmodel_runtime.package`, which must stay light).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlmodel_runtime.package.models import METADATA_FILE, Datatype, ModelFormat, TensorSpec

Signature = tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]


class SignatureUnavailable(Exception):
    """The model file does not say what its tensors are; metadata.json must."""


def _ask_for_metadata(path: Path, why: str) -> SignatureUnavailable:
    return SignatureUnavailable(
        f'{path.name}: {why}; write "inputs" and "outputs" (name, datatype, shape) into {METADATA_FILE}'
    )


# ONNX TensorProto element types (onnx.TensorProto.DataType values) by V2 name.
_ONNX_TYPES: dict[int, Datatype] = {
    1: Datatype.FP32,
    2: Datatype.UINT8,
    3: Datatype.INT8,
    4: Datatype.UINT16,
    5: Datatype.INT16,
    6: Datatype.INT32,
    7: Datatype.INT64,
    8: Datatype.BYTES,  # STRING
    9: Datatype.BOOL,
    10: Datatype.FP16,
    11: Datatype.FP64,
    12: Datatype.UINT32,
    13: Datatype.UINT64,
}

_TORCH_TYPES: dict[str, Datatype] = {
    "torch.float32": Datatype.FP32,
    "torch.float16": Datatype.FP16,
    "torch.float64": Datatype.FP64,
    "torch.uint8": Datatype.UINT8,
    "torch.uint16": Datatype.UINT16,
    "torch.uint32": Datatype.UINT32,
    "torch.uint64": Datatype.UINT64,
    "torch.int8": Datatype.INT8,
    "torch.int16": Datatype.INT16,
    "torch.int32": Datatype.INT32,
    "torch.int64": Datatype.INT64,
    "torch.bool": Datatype.BOOL,
}


def read_signature(path: Path, fmt: ModelFormat) -> Signature:
    """(inputs, outputs) of the model file at `path`; SignatureUnavailable when it cannot say."""
    path = Path(path)
    if fmt is ModelFormat.ONNX:
        return _onnx_signature(path)
    if fmt is ModelFormat.TORCH_EXPORT:
        return _torch_export_signature(path)
    if fmt is ModelFormat.TORCHSCRIPT:
        return _torchscript_signature(path)
    raise _ask_for_metadata(path, f"a {fmt.value} file does not record its tensor specs")


def _onnx_signature(path: Path) -> Signature:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, ValueError, OSError...
        raise SignatureUnavailable(f"{path.name}: not a readable ONNX model ({exc})") from None
    graph = model.graph
    initializers = {init.name for init in graph.initializer}

    def specs(values: Iterable[Any]) -> tuple[TensorSpec, ...]:
        out = []
        for value in values:
            if value.name in initializers:
                continue  # old exporters list weights as graph inputs too
            if not value.type.HasField("tensor_type"):
                raise _ask_for_metadata(path, f"{value.name!r} is not a tensor")
            tensor = value.type.tensor_type
            datatype = _ONNX_TYPES.get(tensor.elem_type)
            if datatype is None:
                name = onnx.TensorProto.DataType.Name(tensor.elem_type)
                raise _ask_for_metadata(path, f"{value.name!r} has element type {name}, which V2 cannot carry")
            shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tensor.shape.dim)
            out.append(TensorSpec(name=value.name, datatype=datatype, shape=shape))
        return tuple(out)

    return specs(graph.input), specs(graph.output)


def _torch_spec(name: str, value: Any, path: Path) -> TensorSpec:
    import torch

    if not isinstance(value, torch.Tensor):
        raise _ask_for_metadata(path, f"{name!r} is not a tensor")
    datatype = _TORCH_TYPES.get(str(value.dtype))
    if datatype is None:
        raise _ask_for_metadata(path, f"{name!r} has dtype {value.dtype}, which V2 cannot carry")
    shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in value.shape)
    return TensorSpec(name=name, datatype=datatype, shape=shape)


def _torch_export_signature(path: Path) -> Signature:
    import torch

    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise SignatureUnavailable(f"{path.name}: not a readable torch.export program ({exc})") from None
    signature = program.graph_signature
    nodes = {node.name: node for node in program.graph.nodes}
    inputs = tuple(_torch_spec(n, nodes[n].meta.get("val"), path) for n in signature.user_inputs)
    outputs = tuple(_torch_spec(n, nodes[n].meta.get("val"), path) for n in signature.user_outputs if n in nodes)
    if len(outputs) != len(signature.user_outputs):
        raise _ask_for_metadata(path, "some outputs are not graph nodes")
    return inputs, outputs


def _torchscript_signature(path: Path) -> Signature:
    import torch

    try:
        with warnings.catch_warnings():
            # torch 2.10+ deprecates TorchScript; the format is still in the contract.
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise SignatureUnavailable(f"{path.name}: not a readable TorchScript module ({exc})") from None

    def specs(values: Iterable[Any]) -> tuple[TensorSpec, ...]:
        out = []
        for value in values:
            kind = value.type()
            sizes = kind.sizes() if hasattr(kind, "sizes") else None
            dtype = kind.dtype() if hasattr(kind, "dtype") else None
            datatype = _TORCH_TYPES.get(str(dtype)) if dtype is not None else None
            if sizes is None or datatype is None:
                raise _ask_for_metadata(path, "TorchScript did not record input and output shapes and dtypes")
            shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in sizes)
            out.append(TensorSpec(name=value.debugName().split(".")[0], datatype=datatype, shape=shape))
        return tuple(out)

    graph_inputs = list(module.graph.inputs())[1:]  # the first input is `self`
    return specs(graph_inputs), specs(module.graph.outputs())
