"""The one small interface every framework backend implements, and the tensor vocabulary it uses.

A backend loads one model file, says which device it runs on, and maps named numpy inputs to
named numpy outputs. Validation of what clients send happens before (server/codec.py), against
the signature from metadata.json, so backends see well-formed arrays only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.generic]

# Open Inference Protocol datatype names and their numpy dtypes (little-endian, as on the wire).
DTYPES: dict[str, np.dtype[np.generic]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(np.object_),
}

_BY_KIND_SIZE = {(d.kind, d.itemsize): name for name, d in DTYPES.items() if name != "BYTES"}


def datatype_of(dtype: np.dtype[np.generic]) -> str:
    """The protocol datatype name of a numpy dtype (strings and objects are BYTES)."""
    if dtype.kind in "OUS":
        return "BYTES"
    try:
        return _BY_KIND_SIZE[(dtype.kind, dtype.itemsize)]
    except KeyError:
        raise ValueError(f"numpy dtype {dtype} has no Open Inference Protocol datatype") from None


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One named tensor of a model's signature; -1 marks a variable dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype[np.generic]:
        return DTYPES[self.datatype]

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True, slots=True)
class Signature:
    """The model's inputs and outputs, as declared in metadata.json."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def batchable(self) -> bool:
        """Every tensor has a variable first dimension, so requests can be stacked on it."""
        return all(t.shape and t.shape[0] == -1 for t in (*self.inputs, *self.outputs))


def dummy_inputs(signature: Signature, rows: int = 1) -> dict[str, Array]:
    """Zero-filled inputs for warm-up: variable dimensions become `rows` (batch) or 1."""
    feed: dict[str, Array] = {}
    for spec in signature.inputs:
        shape = tuple((rows if i == 0 else 1) if d < 0 else d for i, d in enumerate(spec.shape))
        if spec.datatype == "BYTES":
            arr: Array = np.empty(shape, dtype=np.object_)
            arr.fill(b"")
        else:
            arr = np.zeros(shape, dtype=spec.dtype)
        feed[spec.name] = arr
    return feed


class Backend(Protocol):
    """A loaded model. `predict` is called from one worker thread at a time."""

    format: str
    """The package format: onnx, torchscript, torch-export."""

    device: str
    """Where it runs, e.g. `cpu` or `cuda:0`."""

    platform: str
    """The V2 metadata `platform` value, e.g. `onnxruntime_onnx`."""

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        """Run the model; return the requested outputs (names from the signature) as numpy arrays."""
        ...
