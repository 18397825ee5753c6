"""`mlmodel pack`: turn a directory holding a model file into a package.

Fills in `metadata.json` where it is missing or incomplete (name, version, format from the file
name, tensor signature read from the model), then writes `deployment_manifest.json` listing
every file with size and SHA-256, and optionally a `.zip` / `.tar.gz` next to the directory.
Existing metadata is kept; a flag that contradicts it is an error rather than a silent edit.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mlmodel_runtime.package.archive import ArchiveKind, sha256_of
from mlmodel_runtime.package.errors import MetadataInvalid, PackageNotFound
from mlmodel_runtime.package.models import (
    BASELINE_FILE,
    EXAMPLES_FILE,
    MANIFEST_FILE,
    METADATA_FILE,
    SCHEMA_VERSION,
    FileEntry,
    Manifest,
    Metadata,
    ModelFormat,
    package_digest,
    parse_metadata,
)
from mlmodel_runtime.package.verify import optional_file_warnings
from mlmodel_runtime.signatures import SignatureUnavailable, read_signature

CHUNK_SIZE = 1024 * 1024
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class PackError(Exception):
    """The directory cannot be packed as asked (a usage error: exit code 2)."""


@dataclass(frozen=True)
class PackResult:
    directory: Path
    manifest: Manifest
    metadata: Metadata
    digest: str
    warnings: tuple[str, ...]
    metadata_written: bool
    archive: Path | None = None

    def summary(self) -> dict[str, Any]:
        """A JSON-ready account of the result (for `--output json`)."""
        return {
            "directory": str(self.directory),
            "digest": self.digest,
            "name": self.metadata.name,
            "version": self.metadata.version,
            "format": self.metadata.format.value,
            "entrypoint": self.manifest.entrypoint,
            "files": [e.model_dump() for e in self.manifest.files],
            "totalSize": self.manifest.total_size,
            "metadataWritten": self.metadata_written,
            "archive": str(self.archive) if self.archive else None,
            "warnings": list(self.warnings),
        }


def find_model_file(directory: Path, fmt: ModelFormat | None) -> str:
    """The entrypoint: the one model file at the top of `directory` (`model.<ext>` preferred)."""
    candidates = sorted(
        p.name
        for p in directory.iterdir()
        if p.is_file() and (kind := ModelFormat.from_filename(p.name)) is not None and (fmt is None or kind is fmt)
    )
    if not candidates:
        wanted = [fmt.default_file] if fmt else [f.default_file for f in ModelFormat]
        raise PackageNotFound(f"{directory}: no model file (expected {' or '.join(wanted)})")
    preferred = [c for c in candidates if c.startswith("model.")]
    if len(candidates) == 1 or len(preferred) == 1:
        return candidates[0] if len(candidates) == 1 else preferred[0]
    raise PackError(
        f"{directory}: several model files ({', '.join(candidates)}): keep one, name it model.<ext> or pass --format"
    )


def _default_name(directory: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", directory.resolve().name).strip("-._")
    return name or "model"


def _merge(raw: dict[str, Any], key: str, given: str | None, default: str) -> bool:
    """Put `given` (or `default` when absent) under `key`; True when `raw` changed."""
    if given is not None and key in raw and str(raw[key]) != given:
        raise PackError(
            f"{METADATA_FILE} says {key} {raw[key]!r} but --{key} is {given!r}: edit {METADATA_FILE} or remove it"
        )
    if key not in raw:
        raw[key] = given if given is not None else default
        return True
    return False


def prepare_metadata(
    directory: Path, name: str | None, version: str | None, fmt: ModelFormat | None
) -> tuple[Metadata, str, bool]:
    """The package's metadata, its entrypoint and whether metadata.json must be (re)written."""
    meta_path = directory / METADATA_FILE
    raw: dict[str, Any] = {}
    if meta_path.exists():
        try:
            loaded = json.loads(meta_path.read_bytes())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MetadataInvalid(f"{METADATA_FILE}: not valid JSON ({exc})") from None
        if not isinstance(loaded, dict):
            raise MetadataInvalid(f"{METADATA_FILE}: expected a JSON object")
        raw = loaded
    if fmt is None and isinstance(raw.get("format"), str):
        with contextlib.suppress(ValueError):  # parse_metadata below reports it
            fmt = ModelFormat(raw["format"])
    entrypoint = find_model_file(directory, fmt)
    detected = ModelFormat.from_filename(entrypoint)
    assert detected is not None  # find_model_file only returns model files
    changed = _merge(raw, "name", name, _default_name(directory))
    changed |= _merge(raw, "version", version, "1")
    changed |= _merge(raw, "format", fmt.value if fmt else None, detected.value)
    if "inputs" not in raw or "outputs" not in raw:
        try:
            inputs, outputs = read_signature(directory / entrypoint, ModelFormat(raw["format"]))
        except SignatureUnavailable as exc:
            raise MetadataInvalid(str(exc)) from None
        except ValueError:
            inputs, outputs = (), ()  # unknown format: parse_metadata reports it
        raw.setdefault("inputs", [t.model_dump(mode="json") for t in inputs])
        raw.setdefault("outputs", [t.model_dump(mode="json") for t in outputs])
        changed = True
    metadata = parse_metadata(json.dumps(raw).encode())
    return metadata, entrypoint, changed


def _walk(directory: Path) -> list[str]:
    """Every file below `directory` but the manifest, as sorted relative POSIX paths."""
    found = [
        Path(dirpath, name).relative_to(directory).as_posix()
        for dirpath, _dirs, names in os.walk(directory)
        for name in names
    ]
    return sorted(rel for rel in found if rel != MANIFEST_FILE)


def build_manifest(directory: Path, entrypoint: str) -> Manifest:
    """A manifest of every file under `directory` (except the manifest), hashed in chunks."""
    entries = []
    for rel in _walk(directory):
        path = directory / rel
        with open(path, "rb") as f:
            digest, size = sha256_of(iter(lambda: f.read(CHUNK_SIZE), b""))
        entries.append(FileEntry(path=rel, size=size, sha256=digest))
    return Manifest(schema_version=SCHEMA_VERSION, entrypoint=entrypoint, files=tuple(entries))


def _archive_order(manifest: Manifest) -> list[str]:
    # Manifest and metadata first, so a streaming reader meets them early.
    rest = [e.path for e in manifest.files if e.path != METADATA_FILE]
    return [MANIFEST_FILE, METADATA_FILE, *rest]


def _write_zip(out: IO[bytes], directory: Path, manifest: Manifest) -> None:
    with zipfile.ZipFile(out, "w") as zf:
        for rel in _archive_order(manifest):
            info = zipfile.ZipInfo(rel, date_time=_FIXED_ZIP_TIME)
            info.external_attr = 0o100644 << 16
            # Weights hardly compress: store the model, deflate the rest.
            stored = rel == manifest.entrypoint
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            with open(directory / rel, "rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                while chunk := src.read(CHUNK_SIZE):
                    dst.write(chunk)


def _write_tar_gz(out: IO[bytes], directory: Path, manifest: Manifest) -> None:
    # GzipFile with mtime=0 (tarfile's own "w:gz" stamps the current time); level 1 because
    # weights hardly compress and level 6 is several times slower.
    with (
        gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for rel in _archive_order(manifest):
            info = tarfile.TarInfo(rel)
            info.size = (directory / rel).stat().st_size
            info.mode = 0o644
            info.mtime = 0
            with open(directory / rel, "rb") as src:
                tar.addfile(info, src)


def write_archive(directory: Path, manifest: Manifest, kind: ArchiveKind) -> Path:
    """Write `<directory>.zip` or `<directory>.tar.gz` beside the directory, reproducibly."""
    target = directory.resolve().parent / f"{directory.resolve().name}.{kind.value}"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            if kind is ArchiveKind.ZIP:
                _write_zip(out, directory, manifest)
            else:
                _write_tar_gz(out, directory, manifest)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def write_quality_files(directory: Path, metadata: Metadata, entrypoint: str, examples: QualityInputs) -> list[str]:
    """examples.json and baseline.json from the files given, checked against the signature; returns warnings.

    Imports numpy: only called when one was given. Raises PackError with the reason a file is refused.
    """
    from mlmodel_runtime.backends.loading import signature_of
    from mlmodel_runtime.quality import baseline as bl
    from mlmodel_runtime.quality import examples as ex

    signature = signature_of(metadata)
    if examples.examples is not None:
        try:
            found = ex.read_examples(Path(examples.examples), signature)
            tolerances = {name: ex.Tolerance(a, r) for name, (a, r) in examples.tolerances.items()}
            default = ex.Tolerance(*examples.default_tolerance) if examples.default_tolerance else None
            found = ex.with_tolerances(found, tolerances, default)
            ex.check_signature(found, signature)
        except ex.ExamplesInvalid as exc:
            raise PackError(f"--examples {examples.examples}: {exc}") from None
        (directory / EXAMPLES_FILE).write_bytes(ex.to_json_bytes(found))
    if examples.baseline is None:
        return []
    from mlmodel_runtime.backends import load_backend
    from mlmodel_runtime.backends.errors import ModelLoadError

    try:
        backend = load_backend(metadata.format.value, directory / entrypoint, signature)
        computed, warnings = bl.compute_baseline(Path(examples.baseline), signature, backend, examples.bins)
    except bl.BaselineInvalid as exc:
        raise PackError(f"--baseline {examples.baseline}: {exc}") from None
    except ModelLoadError as exc:
        raise PackError(f"--baseline {examples.baseline}: the model's outputs cannot be computed: {exc}") from None
    (directory / BASELINE_FILE).write_bytes(computed.to_json_bytes())
    return list(warnings)


@dataclass(frozen=True)
class QualityInputs:
    """What `mlmodel pack` adds for model quality (docs/quality.md)."""

    examples: Path | str | None = None
    tolerances: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per output: (abs, rel)."""
    default_tolerance: tuple[float, float] | None = None
    baseline: Path | str | None = None
    """Rows from the training data (CSV, .npy, .npz, Parquet) for the drift baseline."""
    bins: int = 10

    @property
    def given(self) -> bool:
        return self.examples is not None or self.baseline is not None


def pack(
    directory: Path | str,
    name: str | None = None,
    version: str | None = None,
    format: ModelFormat | str | None = None,
    archive: ArchiveKind | str | None = None,
    quality: QualityInputs | None = None,
) -> PackResult:
    """Make `directory` a valid package (see the module docstring) and return what was written.

    Raises PackageNotFound when there is no model file, MetadataInvalid when metadata.json is
    broken or the signature cannot be read (the message says what to add), FormatUnsupported
    for an unknown format name, PackError for contradicting flags or an ambiguous model file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise PackageNotFound(f"{directory}: no such directory")
    fmt = ModelFormat(format) if isinstance(format, str) else format
    kind = ArchiveKind(archive) if isinstance(archive, str) else archive
    metadata, entrypoint, changed = prepare_metadata(directory, name, version, fmt)
    if changed:
        (directory / METADATA_FILE).write_bytes(metadata.to_json_bytes())
    quality_warnings: list[str] = []
    if quality is not None and quality.given:
        quality_warnings = write_quality_files(directory, metadata, entrypoint, quality)
    manifest = build_manifest(directory, entrypoint)
    manifest_bytes = manifest.to_json_bytes()
    (directory / MANIFEST_FILE).write_bytes(manifest_bytes)
    archive_path = write_archive(directory, manifest, kind) if kind else None
    return PackResult(
        directory=directory,
        manifest=manifest,
        metadata=metadata,
        digest=package_digest(manifest_bytes),
        warnings=(*optional_file_warnings({e.path for e in manifest.files}), *quality_warnings),
        metadata_written=changed,
        archive=archive_path,
    )
