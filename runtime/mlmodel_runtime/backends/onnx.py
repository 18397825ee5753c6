"""ONNX models on onnxruntime: the CUDA execution provider when a GPU is there, else the CPU."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mlmodel_runtime.backends.base import Array, Signature
from mlmodel_runtime.backends.errors import DeviceUnavailable, InferenceError, ModelLoadError

# onnxruntime's element type names -> Open Inference Protocol datatypes
_ORT_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def choose_providers(device: str, available: Sequence[str]) -> list[str]:
    """Execution providers for the requested device (`auto`, `cpu`, `cuda`)."""
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not has_cuda:
        raise DeviceUnavailable(
            "device 'cuda' requested but onnxruntime has no CUDAExecutionProvider "
            f"(available: {', '.join(available)}); install onnxruntime-gpu or use device 'auto'/'cpu'"
        )
    if device != "cpu" and has_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def check_signature(signature: Signature, session: ort.InferenceSession) -> None:
    """metadata.json must describe the graph: every graph input, the declared outputs, same types."""
    model_inputs = {i.name: i for i in session.get_inputs()}
    model_outputs = {o.name: o for o in session.get_outputs()}
    declared = {t.name for t in signature.inputs}
    problems = [f"graph input '{n}' is not declared in metadata.json" for n in model_inputs if n not in declared]
    for specs, graph, kind in (
        (signature.inputs, model_inputs, "input"),
        (signature.outputs, model_outputs, "output"),
    ):
        for spec in specs:
            node = graph.get(spec.name)
            if node is None:
                problems.append(f"{kind} '{spec.name}' of metadata.json is not in the graph ({', '.join(graph)})")
                continue
            found = _ORT_TYPES.get(node.type, node.type)
            if found != spec.datatype:
                problems.append(f"{kind} '{spec.name}' is {found} in the graph, {spec.datatype} in metadata.json")
            if len(node.shape) != len(spec.shape):
                problems.append(
                    f"{kind} '{spec.name}' has rank {len(node.shape)} in the graph, {len(spec.shape)} in metadata.json"
                )
    if problems:
        raise ModelLoadError("model.onnx does not match metadata.json: " + "; ".join(problems))


class OnnxBackend:
    """One onnxruntime InferenceSession."""

    format = "onnx"
    platform = "onnxruntime_onnx"

    def __init__(
        self,
        path: Path,
        signature: Signature,
        *,
        device: str = "auto",
        intra_op_threads: int = 0,
        inter_op_threads: int = 0,
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        if inter_op_threads > 1:
            options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        providers = choose_providers(device, ort.get_available_providers())
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped Fail/InvalidGraph errors
            raise ModelLoadError(f"onnxruntime cannot load {path.name}: {exc}") from exc
        check_signature(signature, self._session)
        self.device = "cuda" if "CUDAExecutionProvider" in self._session.get_providers() else "cpu"
        self._strings = {t.name for t in signature.inputs if t.datatype == "BYTES"}

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        feed = inputs
        if self._strings:  # onnxruntime takes str, the protocol carries bytes
            feed = dict(inputs)
            for name in self._strings:
                feed[name] = np.vectorize(_utf8, otypes=[np.object_])(inputs[name])
        try:
            results = self._session.run(list(outputs), feed)
        except Exception as exc:
            raise InferenceError(str(exc)) from exc
        return dict(zip(outputs, results, strict=True))


def _utf8(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")
