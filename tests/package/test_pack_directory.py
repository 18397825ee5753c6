"""packing.pack turns a directory with a model file into a valid package: metadata.json written
where missing (name, version, format from the file name, signature from the model) or completed
while keeping what is there; a manifest listing every file; reproducible zip / tar.gz archives.
Contradicting flags, missing or ambiguous model files, unreadable metadata and signatures that
the model does not record are errors that change nothing on disk."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from mlmodel_runtime.package import MetadataInvalid, ModelFormat, PackageNotFound, validate_package
from mlmodel_runtime.package.models import MANIFEST_FILE, METADATA_FILE
from mlmodel_runtime.packing import PackError, pack

from tests.support.packages import make_onnx_mlp, make_torch_export_mlp, make_torchscript_mlp, mlp_signature


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    make_onnx_mlp(tmp_path / "fraud-detector" / "model.onnx", n_in=6, n_out=3)
    return tmp_path / "fraud-detector"


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def test_pack_writes_metadata_and_a_manifest_of_every_file(model_dir: Path) -> None:
    (model_dir / "README.md").write_text("# fraud\n")
    (model_dir / "extra").mkdir()
    (model_dir / "extra" / "labels.txt").write_text("ok\nfraud\n")

    result = pack(model_dir)

    meta = json.loads((model_dir / METADATA_FILE).read_text())
    assert meta == {
        "name": "fraud-detector",
        "version": "1",
        "format": "onnx",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 6]}],
        "outputs": [{"name": "output", "datatype": "FP32", "shape": [-1, 3]}],
    }
    manifest = json.loads((model_dir / MANIFEST_FILE).read_text())
    assert manifest["entrypoint"] == "model.onnx"
    assert [f["path"] for f in manifest["files"]] == ["README.md", "extra/labels.txt", METADATA_FILE, "model.onnx"]
    for entry in manifest["files"]:
        data = (model_dir / entry["path"]).read_bytes()
        assert (entry["size"], entry["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert result.digest == "sha256:" + hashlib.sha256((model_dir / MANIFEST_FILE).read_bytes()).hexdigest()
    assert result.metadata_written
    assert validate_package(str(model_dir)).digest == result.digest
    assert result.warnings == (
        "optional file requirements.txt is missing",
        "optional file inference_example.py is missing",
        "optional file validate_model.py is missing",
    )


def test_flags_name_the_model(model_dir: Path) -> None:
    result = pack(model_dir, name="fraud", version="7", format="onnx")
    assert (result.metadata.name, result.metadata.version) == ("fraud", "7")


def test_existing_metadata_is_kept_and_completed(model_dir: Path) -> None:
    (model_dir / METADATA_FILE).write_text(json.dumps({"version": "7", "training": {"dataset": "q3"}, "owner": "risk"}))
    result = pack(model_dir)
    meta = json.loads((model_dir / METADATA_FILE).read_text())
    assert meta["version"] == "7"
    assert meta["training"] == {"dataset": "q3"}
    assert meta["owner"] == "risk"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 6]}]
    assert result.metadata_written


def test_complete_metadata_is_not_rewritten(model_dir: Path) -> None:
    pack(model_dir)
    before = (model_dir / METADATA_FILE).read_bytes()
    assert not pack(model_dir).metadata_written
    assert (model_dir / METADATA_FILE).read_bytes() == before


def test_a_flag_contradicting_metadata_is_an_error_and_changes_nothing(model_dir: Path) -> None:
    pack(model_dir, version="6")
    before = snapshot(model_dir)
    with pytest.raises(PackError, match=r"metadata.json says version '6' but --version is '7'"):
        pack(model_dir, version="7")
    assert snapshot(model_dir) == before


def test_no_model_file_is_package_not_found(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.md").write_text("hi")
    with pytest.raises(PackageNotFound, match=r"no model file \(expected model.onnx or model.pt or"):
        pack(tmp_path / "empty")
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == ["README.md"]


@pytest.mark.slow  # exports a torch program: torch's first import and export take seconds
def test_several_model_files_need_a_choice(model_dir: Path) -> None:
    make_onnx_mlp(model_dir / "other.onnx")
    make_torch_export_mlp(model_dir / "model.pt2")
    with pytest.raises(PackError, match="several model files"):
        pack(model_dir)
    assert pack(model_dir, format="torch-export").manifest.entrypoint == "model.pt2"


def test_model_file_need_not_be_called_model(tmp_path: Path) -> None:
    make_onnx_mlp(tmp_path / "pkg" / "fraud.onnx")
    assert pack(tmp_path / "pkg").manifest.entrypoint == "fraud.onnx"


def test_unreadable_metadata_is_metadata_invalid(model_dir: Path) -> None:
    (model_dir / METADATA_FILE).write_text("{oops")
    with pytest.raises(MetadataInvalid, match="not valid JSON"):
        pack(model_dir)
    assert not (model_dir / MANIFEST_FILE).exists()


def test_torchscript_needs_its_signature_in_metadata(tmp_path: Path) -> None:
    directory = tmp_path / "ts"
    make_torchscript_mlp(directory / "model.pt")
    with pytest.raises(MetadataInvalid, match=r'write "inputs" and "outputs" \(name, datatype, shape\) into metadata'):
        pack(directory)
    (directory / METADATA_FILE).write_text(json.dumps(mlp_signature()))
    result = pack(directory)
    assert result.metadata.format is ModelFormat.TORCHSCRIPT
    assert validate_package(str(directory)).digest == result.digest


def test_torch_export_signature_is_read_from_the_program(tmp_path: Path) -> None:
    make_torch_export_mlp(tmp_path / "te" / "model.pt2", n_in=5, n_out=2)
    result = pack(tmp_path / "te")
    assert result.metadata.format is ModelFormat.TORCH_EXPORT
    assert [(t.name, t.datatype.value, t.shape) for t in result.metadata.inputs] == [("input", "FP32", (-1, 5))]
    assert [(t.datatype.value, t.shape) for t in result.metadata.outputs] == [("FP32", (-1, 2))]


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archives_are_written_beside_the_directory_and_reproducible(model_dir: Path, kind: str) -> None:
    first = pack(model_dir, archive=kind).archive
    assert first == model_dir.parent / f"fraud-detector.{kind}"
    data = first.read_bytes()
    second = pack(model_dir, archive=kind).archive
    assert second is not None
    assert second.read_bytes() == data, "same files, same archive bytes"
    assert validate_package(str(second)).digest == validate_package(str(model_dir)).digest


def test_repacking_lists_a_new_file(model_dir: Path) -> None:
    first = pack(model_dir)
    (model_dir / "validate_model.py").write_text("print('ok')\n")
    second = pack(model_dir)
    assert second.digest != first.digest
    assert "validate_model.py" in [e.path for e in second.manifest.files]
