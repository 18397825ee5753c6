"""validate_package on local directories, zips and tar.gz files: a packed package passes in
all three forms with the same digest; each defect gets its contract reason and a message naming
the file and values (digest, size, missing and unlisted files, missing manifest, bad metadata,
format rules, expected package digest); the digest cache skips re-hashing unchanged files and
re-hashes changed ones."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from mlmodel_runtime.package import (
    CacheKey,
    DigestCache,
    DigestMismatch,
    FormatNotAllowed,
    FormatUnsupported,
    ManifestInvalid,
    MetadataInvalid,
    ModelFormat,
    PackageDigestMismatch,
    PackageNotFound,
    SizeMismatch,
    validate_package,
)
from mlmodel_runtime.package.models import MANIFEST_FILE, METADATA_FILE
from mlmodel_runtime.package.verify import check_entrypoint_format
from mlmodel_runtime.packing import pack

from tests.support.packages import (
    build_package,
    corrupt_file,
    edit_metadata,
    make_onnx_mlp,
    truncate_file,
    write_manifest,
)

README = {"README.md": "# mlp\n", "requirements.txt": "onnxruntime\n"}


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    return make_onnx_mlp(tmp_path / "src" / "mlp.onnx")


@pytest.fixture
def package(tmp_path: Path, onnx_file: Path) -> Path:
    return build_package(tmp_path / "pkg", onnx_file, name="mlp", version="3", extra_files=README)


def test_a_packed_package_is_valid_as_directory_zip_and_tar_gz(tmp_path: Path, onnx_file: Path) -> None:
    directory = build_package(tmp_path / "mlp", onnx_file, extra_files=README)
    as_dir = validate_package(str(directory))
    as_zip = validate_package(str(pack(directory, archive="zip").archive))
    as_tgz = validate_package(str(pack(directory, archive="tar.gz").archive))
    assert as_dir.digest == as_zip.digest == as_tgz.digest
    assert as_dir.digest == "sha256:" + hashlib.sha256((directory / MANIFEST_FILE).read_bytes()).hexdigest()
    assert as_dir.format is ModelFormat.ONNX
    assert as_dir.metadata.inputs[0].shape == (-1, 4)
    assert as_dir.total_size == sum(p.stat().st_size for p in directory.iterdir())
    assert as_dir.warnings == (
        "optional file inference_example.py is missing",
        "optional file validate_model.py is missing",
    )


def test_a_flipped_byte_names_file_expected_and_found_digests(package: Path) -> None:
    manifest = json.loads((package / MANIFEST_FILE).read_text())
    expected = next(f["sha256"] for f in manifest["files"] if f["path"] == "model.onnx")
    corrupt_file(package, "model.onnx")
    with pytest.raises(DigestMismatch) as err:
        validate_package(str(package))
    found = hashlib.sha256((package / "model.onnx").read_bytes()).hexdigest()
    assert err.value.message == f"model.onnx: sha256 expected {expected} found {found}"
    assert (err.value.path, err.value.expected, err.value.found) == ("model.onnx", expected, found)
    assert err.value.exit_code == 13


def test_a_changed_metadata_file_is_a_digest_mismatch_not_bad_metadata(package: Path) -> None:
    (package / METADATA_FILE).write_text((package / METADATA_FILE).read_text().replace('"3"', '"4"'))
    with pytest.raises(DigestMismatch, match=r"^metadata.json: sha256 expected [0-9a-f]{64} found [0-9a-f]{64}$"):
        validate_package(str(package))


def test_a_shorter_file_is_a_size_mismatch(package: Path) -> None:
    size = (package / "model.onnx").stat().st_size
    truncate_file(package, "model.onnx", remove=10)
    with pytest.raises(SizeMismatch) as err:
        validate_package(str(package))
    assert err.value.message == f"model.onnx: size expected {size} bytes, found {size - 10}"


def test_a_missing_manifest_is_package_not_found(package: Path) -> None:
    (package / MANIFEST_FILE).unlink()
    with pytest.raises(PackageNotFound, match=r"deployment_manifest.json not found"):
        validate_package(str(package))


def test_a_manifest_in_a_subfolder_gets_a_hint(tmp_path: Path, package: Path) -> None:
    outer = tmp_path / "outer"
    outer.mkdir()
    shutil.move(package, outer / "inner")
    with pytest.raises(PackageNotFound, match=r"found inner/deployment_manifest.json: the files must be at the"):
        validate_package(str(outer))


def test_a_missing_listed_file_is_package_not_found(package: Path) -> None:
    (package / "README.md").unlink()
    with pytest.raises(PackageNotFound, match=r"README.md: listed in deployment_manifest.json but not in the package"):
        validate_package(str(package))


def test_an_unlisted_file_is_refused(package: Path) -> None:
    (package / "extra.py").write_text("import os\n")
    with pytest.raises(ManifestInvalid, match=r"files present but not listed: extra.py"):
        validate_package(str(package))


def test_a_missing_directory_is_package_not_found(tmp_path: Path) -> None:
    with pytest.raises(PackageNotFound, match=r"no such directory"):
        validate_package(str(tmp_path / "nothing-here"))


def test_a_file_that_is_no_archive_is_package_not_found(tmp_path: Path) -> None:
    (tmp_path / "model.tar").write_bytes(b"x")
    with pytest.raises(PackageNotFound, match=r"a file, not a package directory or a \.zip"):
        validate_package(str(tmp_path / "model.tar"))


def test_digest_cache_is_bounded_and_forgets_the_least_recent() -> None:
    cache = DigestCache(max_entries=2)
    keys = [CacheKey("loc", f"f{i}", "etag", 1) for i in range(3)]
    cache.put(keys[0], "a")
    cache.put(keys[1], "b")
    assert cache.get(keys[0]) == "a"  # keys[1] is now the least recently used
    cache.put(keys[2], "c")
    assert (len(cache), cache.get(keys[1]), cache.get(keys[0]), cache.get(keys[2])) == (2, None, "a", "c")


def test_bad_metadata_is_metadata_invalid(package: Path) -> None:
    edit_metadata(package, inputs=[{"name": "input", "datatype": "FP32", "shape": [0, 4]}])
    with pytest.raises(MetadataInvalid, match=r"dimension 0 must be -1"):
        validate_package(str(package))


def test_an_unknown_format_is_unsupported(package: Path) -> None:
    edit_metadata(package, format="tensorflow")
    with pytest.raises(FormatUnsupported, match=r"'tensorflow' is not supported"):
        validate_package(str(package))


def test_formats_the_caller_cannot_serve_are_unsupported(package: Path) -> None:
    with pytest.raises(FormatUnsupported, match=r"'onnx' is not supported here \(supported: torchscript\)"):
        validate_package(str(package), allowed_formats={ModelFormat.TORCHSCRIPT})


def test_pickle_needs_permission(tmp_path: Path) -> None:
    model = tmp_path / "model.joblib"
    model.write_bytes(b"pretend pickle")
    directory = build_package(
        tmp_path / "pkl",
        model,
        inputs=[{"name": "x", "datatype": "FP64", "shape": [-1, 3]}],
        outputs=[{"name": "y", "datatype": "INT64", "shape": [-1]}],
    )
    with pytest.raises(FormatNotAllowed, match=r"pickle-based") as err:
        validate_package(str(directory))
    assert err.value.exit_code == 15
    assert validate_package(str(directory), allow_pickle=True).format is ModelFormat.JOBLIB


def test_format_override_must_match_the_entrypoint(package: Path) -> None:
    with pytest.raises(MetadataInvalid, match=r"format 'torchscript' does not match entrypoint 'model.onnx'"):
        validate_package(str(package), format_override=ModelFormat.TORCHSCRIPT)


def test_entrypoint_with_an_unknown_ending_is_accepted_for_any_format() -> None:
    check_entrypoint_format("weights.bin", ModelFormat.ONNX)


def test_expected_digest_mismatch_fails_before_hashing(package: Path) -> None:
    good = validate_package(str(package)).digest
    other = "sha256:" + "0" * 64
    corrupt_file(package, "model.onnx")  # would be a DigestMismatch if files were hashed
    with pytest.raises(PackageDigestMismatch) as err:
        validate_package(str(package), expected_digest=other)
    assert err.value.message.startswith(f"package digest expected {other} found {good}")


def test_an_edited_manifest_changes_the_package_digest(package: Path) -> None:
    first = validate_package(str(package)).digest
    (package / "README.md").write_text("# changed\n")
    second = write_manifest(package)
    assert second != first
    with pytest.raises(PackageDigestMismatch):
        validate_package(str(package), expected_digest=first)
    assert validate_package(str(package), expected_digest=second).digest == second


def test_cache_skips_unchanged_files_and_rehashes_changed_ones(package: Path) -> None:
    cache = DigestCache()
    validate_package(str(package), cache=cache)
    hashed = len(json.loads((package / MANIFEST_FILE).read_text())["files"]) - 1  # metadata.json is read anyway
    assert (cache.hits, cache.misses) == (0, hashed)

    validate_package(str(package), cache=cache)
    assert (cache.hits, cache.misses) == (hashed, hashed), "a second validation hashes nothing"

    corrupt_file(package, "model.onnx")  # same size, new mtime: the key changes
    with pytest.raises(DigestMismatch):
        validate_package(str(package), cache=cache)
    assert cache.misses == hashed + 1
