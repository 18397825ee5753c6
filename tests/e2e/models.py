"""ONNX models for the end-to-end tests: each passes every package check (manifest, digests, metadata,
signatures) and fails, or not, only where a real runtime in a real pod finds out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tests.support.packages import MLP_INPUT, MLP_OUTPUT, build_package, make_onnx_mlp, upload_dir

VERSION_OF_SEED = str  # the package version is the seed: replies say which revision answered


def _save(model: Any, path: Path) -> Path:
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _graph(nodes: list[Any], initializers: list[Any] | None = None) -> Any:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes, "e2e",
        [helper.make_tensor_value_info(MLP_INPUT, TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info(MLP_OUTPUT, TensorProto.FLOAT, ["batch", 2])],
        initializer=initializers or [],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def make_unloadable(path: Path) -> Path:
    """Inputs and outputs right, but a node whose operator no runtime knows: onnxruntime refuses the session."""
    from onnx import helper

    return _save(_graph([helper.make_node("NoSuchOperator", [MLP_INPUT], [MLP_OUTPUT], domain="")]), path)


def make_stuck_warmup(path: Path) -> Path:
    """Loads, then its first inference (the warm-up) runs a loop of 2^62 iterations: never ready."""
    return make_spinning(path, 1 << 62)


def make_spinning(path: Path, trips: int) -> Path:
    """The MLP's signature and answers, behind a Loop of `trips` additions: CPU time per inference, no sleep
    (60000 trips: about 0.1 s of one core here)."""
    from onnx import TensorProto, helper, numpy_helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["acc_in", "one"],
                                                                                   ["acc_out"])],
        "spin",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [])],
        initializer=[numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")],
    )
    inits = [
        numpy_helper.from_array(np.array(trips, dtype=np.int64), "trips"),
        numpy_helper.from_array(np.array(True), "cond"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        numpy_helper.from_array(np.zeros((4, 2), dtype=np.float32), "w"),
    ]
    nodes = [
        helper.make_node("Loop", ["trips", "cond", "zero"], ["spun"], body=body),
        helper.make_node("Mul", ["spun", "zero"], ["none"]),
        helper.make_node("MatMul", [MLP_INPUT, "w"], ["mm"]),
        helper.make_node("Add", ["mm", "none"], [MLP_OUTPUT]),
    ]
    return _save(_graph(nodes, inits), path)


def make_picky(path: Path, seed: int) -> Path:
    """The MLP's answers, but onnxruntime fails on inputs whose first value is 0.4 or more: a Gather indexes the
    weights' 4 rows with floor(10 * x[0]), out of range from 0.4 on (the runtime answers those with a 400)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.standard_normal((4, 2)).astype(np.float32)
    nodes = [
        helper.make_node("Slice", [MLP_INPUT, "start", "end", "axis"], ["first"]),
        helper.make_node("Mul", ["first", "ten"], ["scaled"]),
        helper.make_node("Floor", ["scaled"], ["floored"]),
        helper.make_node("Cast", ["floored"], ["index"], to=TensorProto.INT64),
        helper.make_node("Gather", ["w", "index"], ["picked"], axis=0),
        helper.make_node("ReduceSum", ["picked"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("MatMul", [MLP_INPUT, "w"], ["mm"]),
        helper.make_node("Add", ["mm", "nothing"], [MLP_OUTPUT]),
    ]
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "start"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "end"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis"),
        numpy_helper.from_array(np.array(10.0, dtype=np.float32), "ten"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
    ]
    return _save(_graph(nodes, inits), path)


def make_large(path: Path, megabytes: int, seed: int) -> Path:
    """The MLP plus an unused-looking initializer of `megabytes` MiB that onnxruntime still loads: a large
    package whose download, digest and load take time."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(seed)
    ballast = rng.standard_normal((megabytes * 1024 * 1024 // 4 // 4, 4)).astype(np.float32)
    w = rng.standard_normal((4, 2)).astype(np.float32)
    nodes = [
        # ReduceSum over the ballast (a few ms) keeps it in the graph, so the optimizer cannot drop it.
        helper.make_node("ReduceSum", ["ballast"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("MatMul", [MLP_INPUT, "w"], ["mm"]),
        helper.make_node("Add", ["mm", "nothing"], [MLP_OUTPUT]),
    ]
    inits = [numpy_helper.from_array(ballast, "ballast"), numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")]
    return _save(_graph(nodes, inits), path)


class E2EPackages:
    """Packages uploaded under s3://bucket/<key>/ (version = what the replies' model_version says)."""

    def __init__(self, s3: Any, bucket: str, folder: Path) -> None:
        self.s3, self.bucket, self.folder = s3, bucket, folder

    def _upload(self, key: str, model: Path, version: str) -> str:
        directory = self.folder / key.replace("/", "_")
        build_package(directory, model, name="e2e", version=version, format="onnx")
        return upload_dir(self.s3, self.bucket, key, directory)

    def good(self, key: str, seed: int) -> str:
        return self._upload(key, make_onnx_mlp(self.folder / f"{key.replace('/', '_')}.onnx", seed=seed), str(seed))

    def unloadable(self, key: str) -> str:
        return self._upload(key, make_unloadable(self.folder / "unloadable.onnx"), "unloadable")

    def stuck(self, key: str) -> str:
        return self._upload(key, make_stuck_warmup(self.folder / "stuck.onnx"), "stuck")

    def picky(self, key: str, seed: int) -> str:
        return self._upload(key, make_picky(self.folder / f"picky-{seed}.onnx", seed), str(seed))

    def spinning(self, key: str, trips: int, version: str) -> str:
        return self._upload(key, make_spinning(self.folder / f"spinning-{trips}.onnx", trips), version)

    def large(self, key: str, megabytes: int, seed: int) -> str:
        return self._upload(key, make_large(self.folder / f"large-{seed}.onnx", megabytes, seed), str(seed))


INFER_BODY = {"inputs": [{"name": MLP_INPUT, "shape": [1, 4], "datatype": "FP32", "data": [0.1, 0.2, 0.3, 0.4]}]}
# An input the MLP answers and make_picky's model fails on (its first value is 0.4 or more).
PICKY_BODY = {"inputs": [{"name": MLP_INPUT, "shape": [1, 4], "datatype": "FP32", "data": [0.9, 0.2, 0.3, 0.4]}]}
