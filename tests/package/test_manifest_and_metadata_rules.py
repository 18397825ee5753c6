"""The pure rules of the two package files: accepted and refused manifests and metadata (one
case per rule, with the reason and the words the message must contain), the package digest,
and the error classes' reasons, exit codes and temporariness."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from mlmodel_runtime.package import (
    ALL_ERRORS,
    Datatype,
    FormatUnsupported,
    Manifest,
    ManifestInvalid,
    MetadataInvalid,
    ModelFormat,
    PackageError,
    StoreUnavailable,
    package_digest,
    parse_manifest,
    parse_metadata,
)
from mlmodel_runtime.package.models import path_problem

HEX = "a" * 64


def manifest(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemaVersion": 1,
        "entrypoint": "model.onnx",
        "files": [
            {"path": "metadata.json", "size": 10, "sha256": HEX},
            {"path": "model.onnx", "size": 20, "sha256": HEX},
        ],
    }
    body.update(changes)
    return body


def with_file(path: str, size: Any = 1, sha: Any = HEX) -> dict[str, Any]:
    body = manifest()
    body["files"].append({"path": path, "size": size, "sha256": sha})
    return body


def metadata(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "fraud-detector",
        "version": "7",
        "format": "onnx",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [{"name": "output", "datatype": "FP32", "shape": [-1, 10]}],
    }
    body.update(changes)
    return body


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


def test_contract_example_manifest_parses() -> None:
    parsed = parse_manifest(encode(manifest()))
    assert parsed.entrypoint == "model.onnx"
    assert [f.path for f in parsed.files] == ["metadata.json", "model.onnx"]
    assert parsed.total_size == 30


@pytest.mark.parametrize(
    ("body", "words"),
    [
        pytest.param(b"{not json", "not valid JSON", id="bad-json"),
        pytest.param(b"[1, 2]", "expected a JSON object", id="not-an-object"),
        pytest.param(manifest(schemaVersion=2), "schemaVersion 2 is not supported", id="schema-version"),
        pytest.param({k: v for k, v in manifest().items() if k != "entrypoint"}, "entrypoint", id="no-entrypoint"),
        pytest.param(manifest(files=[]), "files", id="no-files"),
        pytest.param(manifest(extra=1), "extra", id="unknown-field"),
        pytest.param(manifest(entrypoint="model.pt"), "entrypoint 'model.pt' is not listed", id="entry-unlisted"),
        pytest.param(manifest(entrypoint="metadata.json"), "entrypoint cannot be metadata.json", id="entry-meta"),
        pytest.param(with_file("/etc/passwd"), "absolute path", id="absolute"),
        pytest.param(with_file("../escape"), "'..' in path", id="dotdot"),
        pytest.param(with_file("a/../../escape"), "'..' in path", id="inner-dotdot"),
        pytest.param(with_file("dir\\file"), "backslash", id="backslash"),
        pytest.param(with_file("a//b"), "empty or '.' path component", id="empty-component"),
        pytest.param(with_file("./a"), "empty or '.' path component", id="dot-component"),
        pytest.param(with_file("C:x"), "drive letter", id="drive-letter"),
        pytest.param(with_file("a\nb"), "control character", id="control-char"),
        pytest.param(with_file("model.onnx"), "'model.onnx' is listed twice", id="duplicate"),
        pytest.param(with_file("deployment_manifest.json"), "must not list itself", id="lists-itself"),
        pytest.param(with_file("x", sha="A" * 64), "sha256", id="uppercase-hex"),
        pytest.param(with_file("x", sha="a" * 63), "sha256", id="short-hex"),
        pytest.param(with_file("x", sha="sha256:" + "a" * 64), "sha256", id="prefixed-hex"),
        pytest.param(with_file("x", size=-1), "size", id="negative-size"),
        pytest.param(with_file("x", size="12"), "size", id="string-size"),
        pytest.param(
            manifest(files=[{"path": "model.onnx", "size": 1, "sha256": HEX}]),
            "metadata.json is not listed",
            id="no-metadata",
        ),
    ],
)
def test_bad_manifests_are_refused_with_the_field_named(body: Any, words: str) -> None:
    with pytest.raises(ManifestInvalid) as err:
        parse_manifest(body if isinstance(body, bytes) else encode(body))
    assert words in err.value.message
    assert err.value.reason == "ManifestInvalid"
    assert err.value.exit_code == 12


def test_contract_example_metadata_parses() -> None:
    parsed = parse_metadata(encode(metadata(training={"framework": "pytorch 2.5"}, owner="risk-team")))
    assert parsed.format is ModelFormat.ONNX
    assert parsed.inputs[0].datatype is Datatype.FP32
    assert parsed.inputs[0].shape == (-1, 64)
    assert parsed.training == {"framework": "pytorch 2.5"}
    assert parsed.model_extra == {"owner": "risk-team"}, "unknown keys are kept, not refused"


def test_integer_version_is_read_as_text() -> None:
    assert parse_metadata(encode(metadata(version=7))).version == "7"


def test_scalar_shape_is_allowed() -> None:
    spec = {"name": "t", "datatype": "BYTES", "shape": []}
    assert parse_metadata(encode(metadata(inputs=[spec]))).inputs[0].shape == ()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        pytest.param(b"\xff\xfe", "not valid JSON", id="not-utf8"),
        pytest.param(metadata(format=None), "format", id="no-format"),
        pytest.param(metadata(format=3), "format", id="format-not-text"),
        pytest.param(metadata(name=""), "name", id="empty-name"),
        pytest.param(metadata(name="has space"), "name", id="name-with-space"),
        pytest.param(metadata(inputs=[]), "inputs", id="no-inputs"),
        pytest.param(metadata(outputs=None), "outputs", id="no-outputs"),
        pytest.param(
            metadata(inputs=[{"name": "x", "datatype": "FLOAT32", "shape": [1]}]), "datatype", id="bad-datatype"
        ),
        pytest.param(metadata(inputs=[{"name": "x", "datatype": "FP32", "shape": [0]}]), "dimension 0", id="dim-0"),
        pytest.param(metadata(inputs=[{"name": "x", "datatype": "FP32", "shape": [-2]}]), "dimension -2", id="dim-2"),
        pytest.param(metadata(inputs=[{"name": "x", "datatype": "FP32", "shape": [2.0]}]), "2.0", id="float-dim"),
        pytest.param(metadata(inputs=[{"name": "x", "datatype": "FP32", "shape": ["3"]}]), "'3'", id="text-dim"),
        pytest.param(metadata(inputs=[{"name": "x", "datatype": "FP32", "shape": [True]}]), "True", id="bool-dim"),
        pytest.param(metadata(inputs=[{"name": "x", "datatype": "FP32", "shape": 4}]), "shape", id="shape-not-list"),
        pytest.param(
            metadata(inputs=[{"name": "x", "datatype": "FP32", "shape": [1]}] * 2),
            "tensor names listed twice: x",
            id="duplicate-tensor",
        ),
    ],
)
def test_bad_metadata_is_refused_with_the_field_named(body: Any, words: str) -> None:
    with pytest.raises(MetadataInvalid) as err:
        parse_metadata(body if isinstance(body, bytes) else encode(body))
    assert words in err.value.message
    assert err.value.exit_code == 12


def test_unknown_format_name_is_unsupported_not_invalid() -> None:
    with pytest.raises(FormatUnsupported) as err:
        parse_metadata(encode(metadata(format="tensorflow")))
    assert "'tensorflow' is not supported" in err.value.message
    assert "torch-export" in err.value.message, "the message lists the known formats"
    assert err.value.exit_code == 15


def test_only_joblib_is_pickle_based() -> None:
    assert [f for f in ModelFormat if f.is_pickle] == [ModelFormat.JOBLIB]


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("model.onnx", ModelFormat.ONNX),
        ("model.pt", ModelFormat.TORCHSCRIPT),
        ("model.pt2", ModelFormat.TORCH_EXPORT),
        ("model.joblib", ModelFormat.JOBLIB),
        ("MODEL.ONNX", ModelFormat.ONNX),
        ("weights.bin", None),
    ],
)
def test_format_from_file_name(name: str, fmt: ModelFormat | None) -> None:
    assert ModelFormat.from_filename(name) is fmt


def test_package_digest_is_sha256_of_the_exact_manifest_bytes() -> None:
    raw = encode(manifest())
    assert package_digest(raw) == "sha256:" + hashlib.sha256(raw).hexdigest()
    reformatted = json.dumps(manifest(), indent=4).encode()
    assert parse_manifest(reformatted) == parse_manifest(raw)
    assert package_digest(reformatted) != package_digest(raw), "whitespace changes the digest: bytes, not meaning"


def test_canonical_serialisation_round_trips() -> None:
    parsed = parse_manifest(encode(manifest()))
    assert parse_manifest(parsed.to_json_bytes()) == parsed
    assert isinstance(parsed, Manifest)


@pytest.mark.parametrize("path", ["model.onnx", "sub/dir/file.txt", "a.b-c_d"])
def test_safe_paths_pass(path: str) -> None:
    assert path_problem(path) is None


def test_every_reason_has_its_contract_exit_code() -> None:
    codes = {cls.reason: cls.exit_code for cls in ALL_ERRORS}
    assert codes == {
        "PackageNotFound": 10,
        "AccessDenied": 11,
        "ManifestInvalid": 12,
        "MetadataInvalid": 12,
        "SizeMismatch": 13,
        "DigestMismatch": 13,
        "PackageDigestMismatch": 13,
        "UnsafeArchive": 14,
        "FormatUnsupported": 15,
        "FormatNotAllowed": 15,
        "StoreUnavailable": 16,
        "ExamplesMismatch": 17,
    }
    assert [cls.reason for cls in ALL_ERRORS if cls.temporary] == ["StoreUnavailable"]
    assert issubclass(StoreUnavailable, PackageError)
