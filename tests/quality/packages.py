"""Packages with examples for the quality tests: the shared MLP, its examples from the numpy reference, and a
package whose model is swapped for one with other weights (same files, valid manifest, new digest)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from mlmodel_runtime.packing import QualityInputs, pack

from tests.support.packages import MLP_INPUT, MLP_OUTPUT, make_onnx_mlp, reference_mlp


def example_rows(rows: int = 3, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, 4)).astype(np.float32)


def v2_pairs(x: np.ndarray, y: np.ndarray, **extra: Any) -> dict[str, Any]:
    """One V2 request/response pair, as a client would have recorded it."""
    return {
        "examples": [{
            "name": "three-rows",
            "request": {"inputs": [{"name": MLP_INPUT, "datatype": "FP32", "shape": list(x.shape),
                                    "data": x.reshape(-1).tolist()}]},
            "response": {"model_name": "mlp", "outputs": [{"name": MLP_OUTPUT, "datatype": "FP32",
                                                             "shape": list(y.shape), "data": y.reshape(-1).tolist()}]},
        }],
        **extra,
    }


def write_examples(path: Path, seed: int = 0) -> Path:
    """V2 pairs whose expected outputs are what the MLP of `seed` computes (numpy reference)."""
    x = example_rows()
    path.write_text(json.dumps(v2_pairs(x, reference_mlp(x, seed=seed))))
    return path


def package_with_examples(root: Path, seed: int = 0, name: str = "pkg") -> Path:
    """A packed MLP (weights from `seed`) with examples.json from the reference of the same seed."""
    directory = root / name
    directory.mkdir(parents=True)
    make_onnx_mlp(directory / "model.onnx", seed=seed)
    examples = write_examples(root / f"{name}-examples.json", seed=seed)
    pack(directory, name="mlp", version=str(seed), quality=QualityInputs(examples=examples))
    return directory


def swap_weights(package: Path, target: Path, seed: int) -> Path:
    """A copy of `package` whose model.onnx has other weights; re-packed: valid manifest, new digest."""
    shutil.copytree(package, target)
    make_onnx_mlp(target / "model.onnx", seed=seed)
    pack(target)
    return target
