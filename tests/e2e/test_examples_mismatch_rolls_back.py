"""A package whose model was swapped for one with other weights (same files, valid manifest, new digest) fails
its examples in a real pod on the real node: the runtime exits with code 17 before it ever reports started,
the operator records revision 2 Failed with reason ExamplesMismatch, quoting the example, the output and the
largest difference, and rolls back (status.quality: examples Failed); revision 1's pods keep serving, never
restarted or replaced, and a client loop through the Service sees no failed request."""

from __future__ import annotations

import shutil

import pytest
from mlmodel_runtime.packing import QualityInputs, pack

from tests.e2e.conftest import InClusterOperator
from tests.e2e.models import E2EPackages
from tests.e2e.test_failed_revisions_roll_back import _serve_then_break
from tests.quality.packages import write_examples
from tests.support.kube import Kubectl
from tests.support.packages import make_onnx_mlp, upload_dir

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore, pytest.mark.slow]


def _with_examples(packages: E2EPackages, key: str, seed: int) -> tuple[str, str]:
    """The MLP of `seed` with its examples, and the same package with the weights of `seed + 1` re-packed."""
    good = packages.folder / f"{key.replace('/', '_')}-good"
    good.mkdir(parents=True)
    make_onnx_mlp(good / "model.onnx", seed=seed)
    examples = write_examples(packages.folder / "examples.json", seed=seed)
    pack(good, name="e2e", version=str(seed), quality=QualityInputs(examples=examples))
    swapped = packages.folder / f"{key.replace('/', '_')}-swapped"
    shutil.copytree(good, swapped)
    make_onnx_mlp(swapped / "model.onnx", seed=seed + 1)
    pack(swapped)
    return (upload_dir(packages.s3, packages.bucket, f"{key}/1", good),
            upload_dir(packages.s3, packages.bucket, f"{key}/2", swapped))


def test_swapped_model_fails_its_examples_and_rolls_back(
    operator: InClusterOperator, model_ns: str, packages: E2EPackages, kubectl: Kubectl,
) -> None:
    good, swapped = _with_examples(packages, "ex", seed=1)
    rolled, _ = _serve_then_break(kubectl, model_ns, good, swapped)
    failed = next(h for h in rolled["status"]["history"] if h["revision"] == 2)
    assert failed["outcome"] == "Failed"
    assert failed["reason"] == "ExamplesMismatch", failed
    assert "exit code 17 (ExamplesMismatch)" in failed["message"], failed
    assert "example 'three-rows' output 'output': largest difference" in failed["message"], failed
    rolled_back = next(c for c in rolled["status"]["conditions"] if c["type"] == "RolledBack")
    assert rolled_back["reason"] == "ExamplesMismatch", rolled_back
    serving = next(h for h in rolled["status"]["history"] if h["revision"] == 1)
    assert serving["outcome"] == "Serving"
    assert rolled["status"]["quality"] == {"revision": 2, "examples": "Failed", "gate": "NotSet"}
