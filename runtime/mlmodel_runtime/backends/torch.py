"""TorchScript (torch.jit.load) and torch.export (.pt2, torch.export.load) models, on the GPU when present.

Neither loader unpickles arbitrary objects: TorchScript archives and exported programs use
torch's restricted formats. Inputs are passed positionally in metadata.json's order; a single
tensor, a tuple/list of tensors or a dict keyed by output name come back.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlmodel_runtime.backends.base import Array, Signature
from mlmodel_runtime.backends.errors import DeviceUnavailable, InferenceError, ModelLoadError

_threads_lock = threading.Lock()


def choose_device(device: str, cuda_available: bool) -> str:
    """`auto` -> cuda when available; `cuda` without a GPU is an error."""
    if device == "cuda" and not cuda_available:
        raise DeviceUnavailable("device 'cuda' requested but torch sees no CUDA device")
    return "cuda" if device != "cpu" and cuda_available else "cpu"


def configure_threads(intra_op: int, inter_op: int) -> None:
    """Set torch's process-wide pools once; 0 keeps torch's default."""
    with _threads_lock:
        if intra_op > 0:
            torch.set_num_threads(intra_op)
        if inter_op > 0:
            # only settable before the first parallel work; keep what is there otherwise
            with contextlib.suppress(RuntimeError):
                torch.set_num_interop_threads(inter_op)


class TorchBackend:
    """A TorchScript module or the module of an exported program."""

    platform = "pytorch_libtorch"

    def __init__(
        self,
        path: Path,
        signature: Signature,
        *,
        format: str,
        device: str = "auto",
        intra_op_threads: int = 0,
        inter_op_threads: int = 0,
    ) -> None:
        if any(t.datatype == "BYTES" for t in (*signature.inputs, *signature.outputs)):
            raise ModelLoadError("torch models cannot take or return BYTES tensors")
        configure_threads(intra_op_threads, inter_op_threads)
        self.format = format
        self.device = choose_device(device, torch.cuda.is_available())
        self._torch_device = torch.device(self.device)
        self._input_names = [t.name for t in signature.inputs]
        self._output_names = [t.name for t in signature.outputs]
        try:
            self._module = self._load(path, format)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"torch cannot load {path.name} as {format}: {exc}") from exc

    def _load(self, path: Path, format: str) -> Callable[..., Any]:
        if format == "torchscript":
            self.platform = "pytorch_libtorch"
            with warnings.catch_warnings():
                # torch 2.10+ deprecates TorchScript; the format is part of the contract all the same
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(path), map_location=self._torch_device)  # type: ignore[no-untyped-call]
            module.eval()
            return module  # type: ignore[no-any-return]
        if format == "torch-export":
            self.platform = "pytorch_torch_export"
            program = torch.export.load(str(path))
            if self.device != "cpu":
                from torch.export.passes import move_to_device_pass

                program = move_to_device_pass(program, self.device)
            return program.module()
        raise ModelLoadError(f"the torch backend does not serve format '{format}'")

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        args = [self._tensor(inputs[name]) for name in self._input_names]
        try:
            with torch.inference_mode():
                result = self._module(*args)
        except Exception as exc:
            raise InferenceError(str(exc)) from exc
        named = self._name_outputs(result)
        return {name: named[name] for name in outputs}

    def _tensor(self, array: Array) -> torch.Tensor:
        if not array.flags.writeable:  # torch.from_numpy warns on read-only buffers
            array = array.copy()
        return torch.from_numpy(np.ascontiguousarray(array)).to(self._torch_device, non_blocking=True)

    def _name_outputs(self, result: Any) -> dict[str, Array]:
        if isinstance(result, torch.Tensor):
            values: list[Any] = [result]
        elif isinstance(result, list | tuple):
            values = list(result)
        elif isinstance(result, dict):
            missing = [n for n in self._output_names if n not in result]
            if missing:
                raise InferenceError(f"the model returned no output named {', '.join(missing)}")
            values = [result[n] for n in self._output_names]
        else:
            raise InferenceError(f"the model returned {type(result).__name__}, not tensors")
        if len(values) != len(self._output_names):
            raise InferenceError(
                f"the model returned {len(values)} outputs, metadata.json declares {len(self._output_names)}"
            )
        named: dict[str, Array] = {}
        for name, value in zip(self._output_names, values, strict=True):
            if not isinstance(value, torch.Tensor):
                raise InferenceError(f"output '{name}' is {type(value).__name__}, not a tensor")
            named[name] = value.detach().cpu().numpy()
        return named
