"""The two files that describe a package (docs/contracts.md section 1), as pydantic models.

`parse_manifest` and `parse_metadata` turn raw bytes into these models and raise the contract's
`ManifestInvalid` / `MetadataInvalid` / `FormatUnsupported` with a message that names the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from mlmodel_runtime.package.errors import FormatUnsupported, ManifestInvalid, MetadataInvalid

MANIFEST_FILE = "deployment_manifest.json"
METADATA_FILE = "metadata.json"
REQUIRED_FILES: tuple[str, ...] = (MANIFEST_FILE, METADATA_FILE)
"""Files every package holds besides its entrypoint (whose name the manifest gives)."""
OPTIONAL_FILES: tuple[str, ...] = (
    "README.md",
    "requirements.txt",
    "inference_example.py",
    "validate_model.py",
)
"""Files a package should hold; their absence is a warning, not an error."""

EXAMPLES_FILE = "examples.json"
"""Optional: inputs with expected outputs, run before a revision serves (mlmodel_runtime.quality.examples)."""
BASELINE_FILE = "baseline.json"
"""Optional: the drift baseline (mlmodel_runtime.quality.baseline)."""

MAX_JSON_BYTES = 16 * 1024 * 1024
"""Largest manifest or metadata file we read into memory."""
SCHEMA_VERSION = 1


class ModelFormat(StrEnum):
    """Model formats of the contract. `joblib` unpickles, so it may run code when loaded."""

    ONNX = "onnx"
    TORCHSCRIPT = "torchscript"
    TORCH_EXPORT = "torch-export"
    JOBLIB = "joblib"

    @property
    def is_pickle(self) -> bool:
        return self is ModelFormat.JOBLIB

    @property
    def default_file(self) -> str:
        """The entrypoint name `mlmodel pack` expects for this format."""
        return "model" + self.suffixes[0]

    @property
    def suffixes(self) -> tuple[str, ...]:
        """File name endings of this format, the usual one first."""
        return _SUFFIXES[self]

    @classmethod
    def from_filename(cls, name: str) -> ModelFormat | None:
        """The format a file name's ending implies, or None when it implies none."""
        lower = name.lower()
        for fmt, suffixes in _SUFFIXES.items():
            if any(lower.endswith(s) for s in suffixes):
                return fmt
        return None


_SUFFIXES: dict[ModelFormat, tuple[str, ...]] = {
    ModelFormat.ONNX: (".onnx",),
    ModelFormat.TORCHSCRIPT: (".pt", ".pth", ".torchscript"),
    ModelFormat.TORCH_EXPORT: (".pt2",),
    ModelFormat.JOBLIB: (".joblib", ".pkl"),
}


class Datatype(StrEnum):
    """Tensor element types under their Open Inference Protocol (V2) names."""

    BOOL = "BOOL"
    UINT8 = "UINT8"
    UINT16 = "UINT16"
    UINT32 = "UINT32"
    UINT64 = "UINT64"
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    FP16 = "FP16"
    FP32 = "FP32"
    FP64 = "FP64"
    BYTES = "BYTES"


def path_problem(path: str) -> str | None:
    """Why `path` is not a safe relative POSIX path inside a package, or None when it is.

    Shared by the manifest validator and the archive checks, so both refuse the same things.
    """
    if not path:
        return "empty path"
    if "\\" in path:
        return "backslash in path"
    if any(ord(c) < 0x20 or c == "\x7f" for c in path):
        return "control character in path"
    if path.startswith("/"):
        return "absolute path"
    parts = path.split("/")
    if ".." in parts:
        return "'..' in path"
    if any(p in ("", ".") for p in parts):
        return "empty or '.' path component"
    if re.match(r"^[A-Za-z]:", path):
        return "drive letter in path"
    return None


def _safe_path(value: str) -> str:
    problem = path_problem(value)
    if problem:
        raise ValueError(f"{value!r}: {problem}")
    return value


SafePath = Annotated[str, StringConstraints(max_length=4096)]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class FileEntry(BaseModel):
    """One file of the package with its size and SHA-256 (64 lowercase hex digits)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: SafePath
    size: int = Field(ge=0, strict=True)
    sha256: Sha256Hex

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        return _safe_path(value)


class Manifest(BaseModel):
    """`deployment_manifest.json`: the entrypoint and every other file with size and digest."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_version: int = Field(alias="schemaVersion", strict=True)
    entrypoint: SafePath
    files: tuple[FileEntry, ...] = Field(min_length=1)

    @field_validator("schema_version")
    @classmethod
    def _known_schema(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"schemaVersion {value} is not supported (this build reads {SCHEMA_VERSION})")
        return value

    @field_validator("entrypoint")
    @classmethod
    def _check_entrypoint(cls, value: str) -> str:
        return _safe_path(value)

    @model_validator(mode="after")
    def _check_files(self) -> Manifest:
        seen: set[str] = set()
        for entry in self.files:
            if entry.path in seen:
                raise ValueError(f"{entry.path!r} is listed twice")
            seen.add(entry.path)
        if MANIFEST_FILE in seen:
            raise ValueError(f"{MANIFEST_FILE} must not list itself")
        if METADATA_FILE not in seen:
            raise ValueError(f"{METADATA_FILE} is not listed in files")
        if self.entrypoint not in seen:
            raise ValueError(f"entrypoint {self.entrypoint!r} is not listed in files")
        if self.entrypoint == METADATA_FILE:
            raise ValueError(f"entrypoint cannot be {METADATA_FILE}")
        return self

    def entry(self, path: str) -> FileEntry:
        """The entry for `path` (KeyError when it is not listed)."""
        for entry in self.files:
            if entry.path == path:
                return entry
        raise KeyError(path)

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.files)

    def to_json_bytes(self) -> bytes:
        """The canonical serialisation `mlmodel pack` writes (its hash is the package digest)."""
        return (json.dumps(self.model_dump(mode="json", by_alias=True), indent=2) + "\n").encode()


TensorName = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class TensorSpec(BaseModel):
    """One named input or output tensor: V2 datatype and shape (-1 = variable dimension)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: TensorName
    datatype: Datatype
    shape: tuple[int, ...]

    @field_validator("shape", mode="before")
    @classmethod
    def _strict_ints(cls, value: Any) -> Any:
        # Reject 2.0, "3" and True, which pydantic's lax mode would turn into ints.
        if isinstance(value, list | tuple):
            for dim in value:
                if isinstance(dim, bool) or not isinstance(dim, int):
                    raise ValueError(f"dimension {dim!r} is not an integer")
        return value

    @field_validator("shape")
    @classmethod
    def _check_shape(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        for dim in value:
            if dim != -1 and dim < 1:
                raise ValueError(f"dimension {dim} must be -1 (variable) or a positive integer")
        return value


ModelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")]


class Metadata(BaseModel):
    """`metadata.json`: name, version, format and tensor signature. Unknown keys are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: ModelName
    version: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    format: ModelFormat
    inputs: tuple[TensorSpec, ...] = Field(min_length=1)
    outputs: tuple[TensorSpec, ...] = Field(min_length=1)
    training: dict[str, Any] | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _int_version(cls, value: Any) -> Any:
        # "version": 7 is as clear as "7"; keep it a string everywhere else.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("inputs", "outputs")
    @classmethod
    def _unique_names(cls, value: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
        names = [t.name for t in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"tensor names listed twice: {', '.join(dupes)}")
        return value

    def to_json_bytes(self) -> bytes:
        return (json.dumps(self.model_dump(mode="json", exclude_none=True), indent=2) + "\n").encode()


def package_digest(manifest_bytes: bytes) -> str:
    """The package digest: `sha256:<hex>` of the exact bytes of `deployment_manifest.json`."""
    return "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()


def _describe(error: ValidationError) -> str:
    """A one-line account of pydantic's errors: `field.path: message; ...`."""
    parts = []
    for err in error.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def _load_json_object(data: bytes, filename: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{filename}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{filename}: expected a JSON object, found {type(value).__name__}")
    return value


def parse_manifest(data: bytes) -> Manifest:
    """Parse and validate `deployment_manifest.json` (ManifestInvalid names the bad field)."""
    try:
        raw = _load_json_object(data, MANIFEST_FILE)
    except ValueError as exc:
        raise ManifestInvalid(str(exc)) from None
    try:
        return Manifest.model_validate(raw, by_alias=True)
    except ValidationError as exc:
        raise ManifestInvalid(f"{MANIFEST_FILE}: {_describe(exc)}") from None


def parse_metadata(data: bytes) -> Metadata:
    """Parse and validate `metadata.json`.

    A format name this build does not know raises FormatUnsupported (a newer build may serve
    it); a missing or non-string format, like every other defect, raises MetadataInvalid.
    """
    try:
        raw = _load_json_object(data, METADATA_FILE)
    except ValueError as exc:
        raise MetadataInvalid(str(exc)) from None
    fmt = raw.get("format")
    if isinstance(fmt, str) and fmt and fmt not in {f.value for f in ModelFormat}:
        known = ", ".join(f.value for f in ModelFormat)
        raise FormatUnsupported(f"{METADATA_FILE}: format {fmt!r} is not supported (known: {known})")
    try:
        return Metadata.model_validate(raw)
    except ValidationError as exc:
        raise MetadataInvalid(f"{METADATA_FILE}: {_describe(exc)}") from None
