"""signatures.read_signature: ONNX names, element types and shapes (symbolic dimensions -> -1,
weights listed as graph inputs skipped, STRING -> BYTES); torch.export programs with a dynamic
batch; TorchScript and joblib, which do not record specs, and unreadable or V2-incompatible
models raise SignatureUnavailable saying what to write into metadata.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from mlmodel_runtime.package import Datatype, ModelFormat
from mlmodel_runtime.signatures import SignatureUnavailable, read_signature
from onnx import TensorProto, helper, numpy_helper

from tests.support.packages import make_onnx_mlp, make_torch_export_mlp, make_torchscript_mlp


def save_identity(path: Path, elem_type: int, shape: list[int | str], *, weights_as_input: bool = False) -> Path:
    inputs = [helper.make_tensor_value_info("x", elem_type, shape)]
    initializers = []
    if weights_as_input:  # what exporters before IR 4 did
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [1]))
        initializers.append(numpy_helper.from_array(np.ones(1, dtype=np.float32), "w"))
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        inputs,
        [helper.make_tensor_value_info("y", elem_type, shape)],
        initializer=initializers,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


def test_onnx_mlp_signature(tmp_path: Path) -> None:
    inputs, outputs = read_signature(make_onnx_mlp(tmp_path / "m.onnx", n_in=7, n_out=3), ModelFormat.ONNX)
    assert [(t.name, t.datatype, t.shape) for t in inputs] == [("input", Datatype.FP32, (-1, 7))]
    assert [(t.name, t.datatype, t.shape) for t in outputs] == [("output", Datatype.FP32, (-1, 3))]


@pytest.mark.parametrize(
    ("elem_type", "datatype"),
    [
        (TensorProto.INT64, Datatype.INT64),
        (TensorProto.UINT8, Datatype.UINT8),
        (TensorProto.BOOL, Datatype.BOOL),
        (TensorProto.FLOAT16, Datatype.FP16),
        (TensorProto.DOUBLE, Datatype.FP64),
        (TensorProto.STRING, Datatype.BYTES),
    ],
)
def test_onnx_element_types(tmp_path: Path, elem_type: int, datatype: Datatype) -> None:
    inputs, _ = read_signature(save_identity(tmp_path / "m.onnx", elem_type, ["n", 3, 224]), ModelFormat.ONNX)
    assert (inputs[0].datatype, inputs[0].shape) == (datatype, (-1, 3, 224))


def test_onnx_weights_listed_as_inputs_are_not_inputs(tmp_path: Path) -> None:
    path = save_identity(tmp_path / "m.onnx", TensorProto.FLOAT, [2], weights_as_input=True)
    inputs, _ = read_signature(path, ModelFormat.ONNX)
    assert [t.name for t in inputs] == ["x"]


def test_onnx_type_v2_cannot_carry(tmp_path: Path) -> None:
    path = save_identity(tmp_path / "m.onnx", TensorProto.BFLOAT16, [2])
    with pytest.raises(SignatureUnavailable, match="element type BFLOAT16, which V2 cannot carry"):
        read_signature(path, ModelFormat.ONNX)


def test_unreadable_onnx(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(SignatureUnavailable, match=r"m\.onnx: not a readable ONNX model"):
        read_signature(tmp_path / "m.onnx", ModelFormat.ONNX)


def test_torch_export_signature(tmp_path: Path) -> None:
    inputs, outputs = read_signature(make_torch_export_mlp(tmp_path / "m.pt2"), ModelFormat.TORCH_EXPORT)
    assert [(t.name, t.datatype, t.shape) for t in inputs] == [("input", Datatype.FP32, (-1, 4))]
    assert [(t.datatype, t.shape) for t in outputs] == [(Datatype.FP32, (-1, 2))]


@pytest.mark.parametrize(
    ("fmt", "why"),
    [
        (ModelFormat.TORCHSCRIPT, "TorchScript did not record input and output shapes and dtypes"),
        (ModelFormat.JOBLIB, "a joblib file does not record its tensor specs"),
    ],
)
def test_formats_without_specs_ask_for_metadata(tmp_path: Path, fmt: ModelFormat, why: str) -> None:
    path = make_torchscript_mlp(tmp_path / "model.pt") if fmt is ModelFormat.TORCHSCRIPT else tmp_path / "m.joblib"
    with pytest.raises(SignatureUnavailable) as err:
        read_signature(path, fmt)
    assert why in str(err.value)
    assert 'write "inputs" and "outputs" (name, datatype, shape) into metadata.json' in str(err.value)
