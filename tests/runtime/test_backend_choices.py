"""Pure decisions of the backends and loading: execution providers and torch device for `auto`,
`cpu` and `cuda` (with and without a GPU), which formats load (pickle only when allowed), and a
model file that disagrees with metadata.json failing at load with a message naming the tensor."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlmodel_runtime.backends.base import Signature, TensorSpec
from mlmodel_runtime.backends.errors import DeviceUnavailable, ModelLoadError
from mlmodel_runtime.backends.loading import load_model, resolve_format
from mlmodel_runtime.backends.onnx import OnnxBackend, choose_providers
from mlmodel_runtime.backends.torch import choose_device
from mlmodel_runtime.package import FormatNotAllowed, FormatUnsupported

from tests.support.packages import edit_metadata

CPU = ["CPUExecutionProvider"]
GPU = ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_onnx_providers_follow_the_device_setting() -> None:
    assert choose_providers("auto", GPU) == GPU
    assert choose_providers("cuda", GPU) == GPU
    assert choose_providers("cpu", GPU) == CPU
    assert choose_providers("auto", CPU) == CPU
    with pytest.raises(DeviceUnavailable, match="install onnxruntime-gpu"):
        choose_providers("cuda", CPU)


def test_torch_device_follows_the_device_setting() -> None:
    assert choose_device("auto", cuda_available=True) == "cuda"
    assert choose_device("cpu", cuda_available=True) == "cpu"
    assert choose_device("auto", cuda_available=False) == "cpu"
    with pytest.raises(DeviceUnavailable):
        choose_device("cuda", cuda_available=False)


def test_formats_pickle_only_when_allowed() -> None:
    assert resolve_format("onnx", "", allow_pickle=False) == "onnx"
    assert resolve_format("onnx", "torch-export", allow_pickle=False) == "torch-export"
    with pytest.raises(FormatNotAllowed, match="MLMODEL_ALLOW_PICKLE=true"):
        resolve_format("joblib", "", allow_pickle=False)
    assert resolve_format("joblib", "", allow_pickle=True) == "joblib"
    with pytest.raises(FormatUnsupported, match="'tensorflow' is not supported"):
        resolve_format("onnx", "tensorflow", allow_pickle=False)


def test_a_model_that_disagrees_with_its_metadata_does_not_load(onnx_package: Path) -> None:
    edit_metadata(
        onnx_package,
        inputs=[{"name": "input", "datatype": "FP64", "shape": [-1, 4]}],
        outputs=[{"name": "scores", "datatype": "FP32", "shape": [-1, 2]}],
    )
    with pytest.raises(ModelLoadError) as info:
        load_model(onnx_package, served_name="mlp")
    assert "input 'input' is FP32 in the graph, FP64 in metadata.json" in str(info.value)
    assert "output 'scores' of metadata.json is not in the graph (output)" in str(info.value)


def test_a_file_that_is_no_onnx_model_fails_to_load(tmp_path: Path) -> None:
    junk = tmp_path / "model.onnx"
    junk.write_bytes(b"not a model")
    signature = Signature((TensorSpec("x", "FP32", (-1, 1)),), (TensorSpec("y", "FP32", (-1, 1)),))
    with pytest.raises(ModelLoadError, match=r"onnxruntime cannot load model\.onnx"):
        OnnxBackend(junk, signature)
