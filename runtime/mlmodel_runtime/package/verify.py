"""Validation of a package: everything the contract requires, cheapest checks first.

Order: listing -> manifest present -> package digest (before any hashing) -> manifest schema
-> no unlisted files -> every listed file present with its size -> metadata.json digest and
schema -> format supported and allowed -> SHA-256 of every other file (streamed, bounded
memory, cached by ETag). The first failure raises the contract's PackageError.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from mlmodel_runtime.package.archive import sha256_of
from mlmodel_runtime.package.cache import CacheKey, DigestCache
from mlmodel_runtime.package.errors import (
    DigestMismatch,
    FormatNotAllowed,
    FormatUnsupported,
    ManifestInvalid,
    MetadataInvalid,
    PackageDigestMismatch,
    PackageNotFound,
    SizeMismatch,
)
from mlmodel_runtime.package.models import (
    MANIFEST_FILE,
    METADATA_FILE,
    OPTIONAL_FILES,
    Manifest,
    Metadata,
    ModelFormat,
    package_digest,
    parse_manifest,
    parse_metadata,
)
from mlmodel_runtime.package.source import PackageSource, SourceFile, open_source
from mlmodel_runtime.package.store import ObjectStore, Progress


@dataclass(frozen=True)
class ValidatedPackage:
    """A package that passed every check."""

    uri: str
    digest: str
    """`sha256:<hex>` of the manifest bytes: identifies the whole package."""
    manifest: Manifest
    metadata: Metadata
    format: ModelFormat
    """The format to load with: the override if one was given, else metadata.json's."""
    total_size: int
    """Bytes of all files, the manifest included."""
    warnings: tuple[str, ...] = ()
    path: Path | None = None
    """The local directory holding the files (set by fetch_package)."""

    @property
    def entrypoint(self) -> str:
        return self.manifest.entrypoint


def check_format(fmt: ModelFormat, *, allow_pickle: bool, allowed_formats: Collection[ModelFormat] | None) -> None:
    """FormatUnsupported when the caller cannot serve `fmt`; FormatNotAllowed for refused pickle."""
    if allowed_formats is not None and fmt not in allowed_formats:
        allowed = ", ".join(sorted(f.value for f in allowed_formats)) or "none"
        raise FormatUnsupported(f"format {fmt.value!r} is not supported here (supported: {allowed})")
    if fmt.is_pickle and not allow_pickle:
        raise FormatNotAllowed(
            f"format {fmt.value!r} is pickle-based and can run code when loaded; "
            "it is refused unless pickle is allowed (allowPickle / MLMODEL_ALLOW_PICKLE=true)"
        )


def check_entrypoint_format(entrypoint: str, fmt: ModelFormat) -> None:
    """MetadataInvalid when the entrypoint's file ending belongs to another known format."""
    implied = ModelFormat.from_filename(entrypoint)
    if implied is not None and implied is not fmt:
        raise MetadataInvalid(
            f"{METADATA_FILE}: format {fmt.value!r} does not match entrypoint {entrypoint!r} "
            f"(a {implied.value} file name)"
        )


def _manifest_missing(files: dict[str, SourceFile], uri: str) -> PackageNotFound:
    nested = sorted(p for p in files if p.endswith("/" + MANIFEST_FILE))
    hint = f" (found {nested[0]}: the files must be at the package root)" if nested else ""
    return PackageNotFound(f"{uri}: {MANIFEST_FILE} not found{hint}")


def _check_listing(manifest: Manifest, files: dict[str, SourceFile]) -> None:
    listed = {e.path for e in manifest.files}
    unlisted = sorted(set(files) - listed - {MANIFEST_FILE})
    if unlisted:
        shown = ", ".join(unlisted[:5]) + (f" and {len(unlisted) - 5} more" if len(unlisted) > 5 else "")
        raise ManifestInvalid(
            f"{MANIFEST_FILE}: files present but not listed: {shown} (re-run `mlmodel pack` to list them)"
        )
    for entry in manifest.files:
        found = files.get(entry.path)
        if found is None:
            raise PackageNotFound(f"{entry.path}: listed in {MANIFEST_FILE} but not in the package")
        if found.size != entry.size:
            raise SizeMismatch(entry.path, entry.size, found.size)


def _counted(chunks: Iterator[bytes], progress: Progress | None) -> Iterator[bytes]:
    for chunk in chunks:
        if progress is not None:
            progress(len(chunk))
        yield chunk


def _file_sha256(
    source: PackageSource, file: SourceFile, cache: DigestCache | None, progress: Progress | None = None
) -> str:
    pre = source.precomputed_sha256(file.path)
    if pre is not None:
        return pre
    key = CacheKey(source.cache_location, file.path, file.etag, file.size)
    if cache is not None and (hit := cache.get(key)) is not None:
        return hit
    digest, size = sha256_of(_counted(source.iter_chunks(file.path), progress))
    if size != file.size:  # changed between listing and reading
        raise SizeMismatch(file.path, file.size, size)
    if cache is not None:
        cache.put(key, digest)
    return digest


@dataclass(frozen=True)
class CheckedHead:
    """What the cheap checks established: everything but the digests of the other files."""

    files: dict[str, SourceFile]
    manifest_bytes: bytes
    digest: str
    manifest: Manifest
    metadata: Metadata
    format: ModelFormat


def check_head(
    source: PackageSource,
    *,
    allow_pickle: bool = False,
    allowed_formats: Collection[ModelFormat] | None = None,
    expected_digest: str | None = None,
    format_override: ModelFormat | None = None,
) -> CheckedHead:
    """Every check that needs only the listing, the manifest and metadata.json (no hashing)."""
    files = source.list_files()
    if MANIFEST_FILE not in files:
        raise _manifest_missing(files, source.uri)
    try:
        manifest_bytes = source.read_bytes(MANIFEST_FILE)
    except ValueError as exc:
        raise ManifestInvalid(str(exc)) from None
    digest = package_digest(manifest_bytes)
    if expected_digest and digest != expected_digest:
        raise PackageDigestMismatch(expected_digest, digest)
    manifest = parse_manifest(manifest_bytes)
    _check_listing(manifest, files)

    meta_entry = manifest.entry(METADATA_FILE)
    try:
        metadata_bytes = source.read_bytes(METADATA_FILE)
    except ValueError as exc:
        raise MetadataInvalid(str(exc)) from None
    found = hashlib.sha256(metadata_bytes).hexdigest()
    if found != meta_entry.sha256:
        raise DigestMismatch(METADATA_FILE, meta_entry.sha256, found)
    metadata = parse_metadata(metadata_bytes)

    fmt = format_override or metadata.format
    check_format(fmt, allow_pickle=allow_pickle, allowed_formats=allowed_formats)
    check_entrypoint_format(manifest.entrypoint, fmt)
    return CheckedHead(files, manifest_bytes, digest, manifest, metadata, fmt)


def optional_file_warnings(paths: Collection[str]) -> tuple[str, ...]:
    return tuple(f"optional file {name} is missing" for name in OPTIONAL_FILES if name not in paths)


def validate_source(
    source: PackageSource,
    *,
    allow_pickle: bool = False,
    allowed_formats: Collection[ModelFormat] | None = None,
    expected_digest: str | None = None,
    format_override: ModelFormat | None = None,
    cache: DigestCache | None = None,
    progress: Progress | None = None,
) -> ValidatedPackage:
    """Validate an open source; see validate_package."""
    head = check_head(
        source,
        allow_pickle=allow_pickle,
        allowed_formats=allowed_formats,
        expected_digest=expected_digest,
        format_override=format_override,
    )
    for entry in head.manifest.files:
        if entry.path == METADATA_FILE:
            continue  # hashed from the bytes check_head read
        found = _file_sha256(source, head.files[entry.path], cache, progress)
        if found != entry.sha256:
            raise DigestMismatch(entry.path, entry.sha256, found)
    return ValidatedPackage(
        uri=source.uri,
        digest=head.digest,
        manifest=head.manifest,
        metadata=head.metadata,
        format=head.format,
        total_size=head.manifest.total_size + len(head.manifest_bytes),
        warnings=optional_file_warnings(head.files),
    )


def validate_package(
    source: PackageSource | str,
    *,
    allow_pickle: bool = False,
    allowed_formats: Collection[ModelFormat] | None = None,
    expected_digest: str | None = None,
    format_override: ModelFormat | None = None,
    cache: DigestCache | None = None,
    store: ObjectStore | None = None,
    progress: Progress | None = None,
) -> ValidatedPackage:
    """Check a package completely without keeping a copy of it.

    `source` is a PackageSource or a URI (`s3://bucket/prefix/`, `s3://bucket/x.zip`, a local
    directory or archive; S3 URIs use `store`, default one configured from the environment).
    `allowed_formats` limits the formats the caller can serve (others: FormatUnsupported);
    pickle-based formats need `allow_pickle` (else FormatNotAllowed). `expected_digest`
    (`sha256:<hex>`) makes a different manifest fail with PackageDigestMismatch before any
    file is hashed. `format_override` replaces metadata.json's format (MLMODEL_FORMAT).
    `cache` skips re-hashing files whose location, path, ETag and size are unchanged.
    `progress` is called with the byte counts read for hashing (not for a tar.gz, which is
    hashed while it is listed).

    A missing manifest is PackageNotFound (the contract: "the manifest ... does not exist").
    """
    if isinstance(source, str):
        with open_source(source, store=store) as opened:
            return validate_source(
                opened,
                allow_pickle=allow_pickle,
                allowed_formats=allowed_formats,
                expected_digest=expected_digest,
                format_override=format_override,
                cache=cache,
                progress=progress,
            )
    return validate_source(
        source,
        allow_pickle=allow_pickle,
        allowed_formats=allowed_formats,
        expected_digest=expected_digest,
        format_override=format_override,
        cache=cache,
        progress=progress,
    )
