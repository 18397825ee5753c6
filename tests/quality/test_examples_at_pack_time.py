"""`mlmodel pack --examples` (the console script, a real process): V2 JSON pairs and a `.npz` become
examples.json in the package, covered by the manifest and so by the package digest; tolerances per output
from the file and from --tolerance; examples that do not fit the model's signature are refused with exit
code 2 and a message naming the example, the tensor and what was expected, and no manifest is written;
`mlmodel verify` runs the examples locally and fails a package whose model was swapped with exit code 17."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlmodel_runtime.package import MANIFEST_FILE, parse_manifest, validate_package

from tests.quality.packages import example_rows, package_with_examples, swap_weights, v2_pairs, write_examples
from tests.support.packages import MLP_INPUT, MLP_OUTPUT, make_onnx_mlp, reference_mlp

MLMODEL = str(Path(sys.executable).parent / "mlmodel")


def mlmodel(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([MLMODEL, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    make_onnx_mlp(tmp_path / "mlp" / "model.onnx")
    return tmp_path / "mlp"


def stored(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / "examples.json").read_text())
    return data


def test_json_pairs_are_stored_and_covered_by_the_digest(tmp_path: Path, model_dir: Path) -> None:
    examples = write_examples(tmp_path / "examples.json")
    result = mlmodel("pack", str(model_dir), "--examples", str(examples), "--tolerance", "output=1e-4,1e-3",
                     "--output", "json")
    assert result.returncode == 0, result.stderr
    manifest = parse_manifest((model_dir / MANIFEST_FILE).read_bytes())
    assert "examples.json" in {e.path for e in manifest.files}
    body = stored(model_dir)
    assert body["tolerance"] == {"default": {"abs": 1e-5, "rel": 1e-4}, "output": {"abs": 1e-4, "rel": 1e-3}}
    x = np.array(body["examples"][0]["inputs"][0]["data"], dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(x, example_rows())
    digest = validate_package(str(model_dir)).digest
    assert json.loads(result.stdout)["digest"] == digest
    # An edit of the stored examples is an edit of the package: its listed SHA-256 no longer matches.
    (model_dir / "examples.json").write_text(json.dumps({**body, "tolerance": {"default": {"abs": 1e9}}}))
    verified = mlmodel("verify", str(model_dir), "--output", "json")
    assert verified.returncode == 13, verified.stdout
    assert json.loads(verified.stdout)["reason"] in {"DigestMismatch", "SizeMismatch"}


def test_npz_examples_and_tolerances_from_the_file(tmp_path: Path, model_dir: Path) -> None:
    x = example_rows(5)
    arrays: dict[str, Any] = {MLP_INPUT: x, MLP_OUTPUT: reference_mlp(x)}
    np.savez(tmp_path / "batch.npz", **arrays)
    ok = mlmodel("pack", str(model_dir), "--examples", str(tmp_path / "batch.npz"), "--tolerance", "default=0,1e-5")
    assert ok.returncode == 0, ok.stderr
    assert "quality: examples.json" in ok.stdout
    body = stored(model_dir)
    assert body["examples"][0]["name"] == "batch"
    assert body["examples"][0]["outputs"][0]["shape"] == [5, 2]
    assert body["tolerance"] == {"default": {"abs": 0.0, "rel": 1e-5}}
    verified = mlmodel("verify", str(model_dir), "--output", "json")
    assert verified.returncode == 0, verified.stdout
    assert json.loads(verified.stdout)["examples"]["passed"] == 1


@pytest.mark.parametrize(
    ("example", "message"),
    [
        (lambda x, y: v2_pairs(x[:, :3], y), "example 'three-rows' input 'input': shape [3, 3] does not match "
                                             "the signature's [-1, 4]"),
        (lambda x, y: v2_pairs(x.astype(np.float64), y), None),  # JSON numbers: the signature's datatype wins
        (lambda x, y: {"examples": [{"name": "e", "inputs": [{"name": "features", "datatype": "FP32",
                                                              "shape": [1, 4], "data": [0, 0, 0, 0]}],
                                     "outputs": [{"name": MLP_OUTPUT, "datatype": "FP32", "shape": [1, 2],
                                                  "data": [0, 0]}]}]},
         "example 'e': inputs ['features'] do not match the model's inputs (input): missing input: unknown features"),
        (lambda x, y: {"examples": [{"name": "e", "inputs": [{"name": MLP_INPUT, "datatype": "INT64",
                                                              "shape": [1, 4], "data": [0, 0, 0, 0]}],
                                     "outputs": [{"name": MLP_OUTPUT, "datatype": "FP32", "shape": [1, 2],
                                                  "data": [0, 0]}]}]},
         "example 'e' input 'input': datatype int64 does not match the signature's FP32"),
        (lambda x, y: v2_pairs(x, y, tolerance={"logits": {"abs": 1}}), "tolerance for logits: not an output"),
        (lambda x, y: {"examples": [{"name": "e", "request": {"inputs": []}}]},
         "a V2 pair needs both 'request' and 'response' objects"),
        (lambda x, y: [], "expected a non-empty list of examples"),
    ],
    ids=["shape", "float64-data", "unknown-input", "datatype", "tolerance-output", "no-response", "empty"],
)
def test_examples_that_do_not_fit_the_signature_are_refused(
    tmp_path: Path, model_dir: Path, example: Any, message: str | None
) -> None:
    x = example_rows()
    path = tmp_path / "examples.json"
    path.write_text(json.dumps(example(x, reference_mlp(x))))
    result = mlmodel("pack", str(model_dir), "--examples", str(path), "--output", "json")
    if message is None:
        assert result.returncode == 0, result.stdout
        return
    assert result.returncode == 2, result.stdout
    answer = json.loads(result.stdout)
    assert answer["reason"] == "UsageError"
    assert message in answer["message"], answer["message"]
    assert not (model_dir / MANIFEST_FILE).exists(), "a refused pack wrote a manifest"


def test_bad_tolerance_flags_and_files_are_refused(tmp_path: Path, model_dir: Path) -> None:
    examples = write_examples(tmp_path / "examples.json")
    for flags, message in [
        (["--tolerance", "output=abc"], "expected OUTPUT=ABS,REL"),
        (["--tolerance", "output=-1,0"], "tolerance abs must be a finite number >= 0"),
    ]:
        result = mlmodel("pack", str(model_dir), "--examples", str(examples), *flags)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr, result.stderr
    assert mlmodel("pack", str(model_dir), "--tolerance", "output=0,0").returncode == 2
    (tmp_path / "examples.csv").write_text("a,b\n")
    result = mlmodel("pack", str(model_dir), "--examples", str(tmp_path / "examples.csv"))
    assert result.returncode == 2, result.stderr
    assert "must be a .json" in result.stderr, result.stderr


def test_verify_fails_a_package_whose_model_was_swapped(tmp_path: Path) -> None:
    good = package_with_examples(tmp_path, seed=0)
    swapped = swap_weights(good, tmp_path / "swapped", seed=1)
    assert validate_package(str(swapped)).digest != validate_package(str(good)).digest  # valid, other digest
    result = mlmodel("verify", str(swapped), "--output", "json")
    assert result.returncode == 17, result.stdout + result.stderr
    answer = json.loads(result.stdout)
    assert answer["reason"] == "ExamplesMismatch"
    assert "example 'three-rows' output 'output': largest difference" in answer["message"]
    # the same package, --no-examples: every file is intact
    assert mlmodel("verify", str(swapped), "--no-examples").returncode == 0
