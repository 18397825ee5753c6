"""Download a package into a local model directory, verified and all-or-nothing.

Layout under `model_dir` (an emptyDir in the pod):

    sha256-<hex>/             the package files, renamed into place only after every check
    sha256-<hex>.complete     the completion marker, written (atomically) last
    .partial-XXXX/            a download in progress; never taken for a package
    .partial-XXXX.lock        held (flock) by the fetch writing .partial-XXXX/; a free lock
                              means that fetch died, and the next fetch removes its leftovers

A directory without its marker (a crash between rename and marker) is not complete: the next
fetch replaces it. A complete copy with the same digest is reused without downloading.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from mlmodel_runtime.package.errors import PackageError
from mlmodel_runtime.package.models import MANIFEST_FILE, ModelFormat
from mlmodel_runtime.package.source import LocalDirSource, PackageSource, open_source
from mlmodel_runtime.package.store import ObjectStore, Progress
from mlmodel_runtime.package.verify import (
    ValidatedPackage,
    check_format,
    check_head,
    optional_file_warnings,
    validate_source,
)

MARKER_SUFFIX = ".complete"
PARTIAL_PREFIX = ".partial-"
LOCK_SUFFIX = ".lock"


def package_dir(model_dir: Path, digest: str) -> Path:
    """Where the package with `digest` (`sha256:<hex>`) lives under `model_dir`."""
    return Path(model_dir) / digest.replace(":", "-")


def marker_path(model_dir: Path, digest: str) -> Path:
    return Path(model_dir) / (digest.replace(":", "-") + MARKER_SUFFIX)


def find_fetched(model_dir: Path, digest: str | None = None) -> ValidatedPackage | None:
    """The complete package under `model_dir` (the one with `digest`, else the newest), or None.

    Reads the manifest and metadata again (no hashing: the files were verified before the
    marker was written) and checks the manifest still hashes to the marker's digest.
    """
    model_dir = Path(model_dir)
    if digest is not None:
        markers = [marker_path(model_dir, digest)]
    else:
        markers = sorted(model_dir.glob("sha256-*" + MARKER_SUFFIX), key=lambda p: p.stat().st_mtime_ns)
    for marker in reversed(markers):
        if not marker.is_file():
            continue
        found = _load_fetched(marker)
        if found is not None:
            return found
    return None


def _load_fetched(marker: Path) -> ValidatedPackage | None:
    try:
        record = json.loads(marker.read_text())
        digest = str(record["digest"])
        root = package_dir(marker.parent, digest)
        source = LocalDirSource(root)
        head = check_head(source, expected_digest=digest, allow_pickle=True)
        fmt = ModelFormat(record.get("format", head.format))
    except (OSError, ValueError, KeyError, TypeError, PackageError):
        return None  # unreadable or changed since it was verified: not a complete copy
    return ValidatedPackage(
        uri=str(record.get("uri", root)),
        digest=digest,
        manifest=head.manifest,
        metadata=head.metadata,
        format=fmt,
        total_size=head.manifest.total_size + len(head.manifest_bytes),
        warnings=optional_file_warnings(head.files),
        path=root,
    )


def _write_marker(model_dir: Path, package: ValidatedPackage) -> None:
    record = {
        "digest": package.digest,
        "uri": package.uri,
        "format": package.format.value,
        "completedAt": datetime.now(UTC).isoformat(),
    }
    fd, tmp = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=".marker", dir=model_dir)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, marker_path(model_dir, package.digest))


def _reuse(
    model_dir: Path,
    digest: str,
    allow_pickle: bool,
    allowed_formats: Collection[ModelFormat] | None,
    format_override: ModelFormat | None,
) -> ValidatedPackage | None:
    found = find_fetched(model_dir, digest)
    if found is None:
        return None
    fmt = format_override or found.metadata.format
    check_format(fmt, allow_pickle=allow_pickle, allowed_formats=allowed_formats)
    return dataclasses.replace(found, format=fmt)


def fetch_source(
    source: PackageSource,
    model_dir: Path,
    *,
    allow_pickle: bool = False,
    allowed_formats: Collection[ModelFormat] | None = None,
    expected_digest: str | None = None,
    format_override: ModelFormat | None = None,
    progress: Progress | None = None,
) -> ValidatedPackage:
    """Fetch from an open source; see fetch_package."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    wanted: set[str] = set()
    digest = expected_digest or None
    if source.random_access:
        # Cheap checks first: a bad package fails before a byte of the model is downloaded.
        head = check_head(
            source,
            allow_pickle=allow_pickle,
            allowed_formats=allowed_formats,
            expected_digest=expected_digest,
            format_override=format_override,
        )
        digest = head.digest
        reused = _reuse(model_dir, digest, allow_pickle, allowed_formats, format_override)
        if reused is not None:
            return reused
        wanted = {e.path for e in head.manifest.files} | {MANIFEST_FILE}
    elif digest and (reused := _reuse(model_dir, digest, allow_pickle, allowed_formats, format_override)):
        return reused

    with _partial_dir(model_dir) as partial:
        source.materialize(partial, wanted, progress)
        local = validate_source(
            LocalDirSource(partial),
            allow_pickle=allow_pickle,
            allowed_formats=allowed_formats,
            expected_digest=digest,
            format_override=format_override,
        )
        # Another fetch of the same package may have finished first: keep that one.
        reused = _reuse(model_dir, local.digest, allow_pickle, allowed_formats, format_override)
        if reused is not None:
            return reused
        final = package_dir(model_dir, local.digest)
        if final.exists():
            shutil.rmtree(final)  # left by a fetch that died before writing its marker
        os.rename(partial, final)
        fetched = dataclasses.replace(local, uri=source.uri, path=final)
        _write_marker(model_dir, fetched)
        return fetched


@contextmanager
def _partial_dir(model_dir: Path) -> Iterator[Path]:
    """A fresh `.partial-*` directory, flock-ed while in use and removed unless renamed away.

    Partial copies left by a killed fetch (an OOM-killed init container) are removed here:
    their lock is free. flock works across the containers of a pod sharing the emptyDir.
    """
    fd, lock_name = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=LOCK_SUFFIX, dir=model_dir)
    fcntl.flock(fd, fcntl.LOCK_EX)
    partial = Path(lock_name.removesuffix(LOCK_SUFFIX))
    try:
        partial.mkdir()
        _remove_stale_partials(model_dir)
        yield partial
    finally:
        shutil.rmtree(partial, ignore_errors=True)  # gone already when renamed into place
        Path(lock_name).unlink(missing_ok=True)
        os.close(fd)


def _remove_stale_partials(model_dir: Path) -> None:
    for lock in model_dir.glob(PARTIAL_PREFIX + "*" + LOCK_SUFFIX):
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live fetch holds it
        else:
            shutil.rmtree(str(lock).removesuffix(LOCK_SUFFIX), ignore_errors=True)
            lock.unlink(missing_ok=True)
        finally:
            os.close(fd)


def fetch_package(
    source: PackageSource | str,
    model_dir: Path,
    *,
    allow_pickle: bool = False,
    allowed_formats: Collection[ModelFormat] | None = None,
    expected_digest: str | None = None,
    format_override: ModelFormat | None = None,
    progress: Progress | None = None,
    store: ObjectStore | None = None,
) -> ValidatedPackage:
    """Download, verify and atomically install a package under `model_dir`.

    Files go into a `.partial-*` sibling, every check of validate_package runs on the local
    copy, then the directory is renamed to `sha256-<hex>` and the `.complete` marker written
    last; any failure removes the partial copy. A complete copy with the same digest is reused.
    `progress` is called with byte counts as data arrives. Returns the package with `.path`.
    """
    if isinstance(source, str):
        with open_source(source, store=store) as opened:
            return fetch_source(
                opened,
                model_dir,
                allow_pickle=allow_pickle,
                allowed_formats=allowed_formats,
                expected_digest=expected_digest,
                format_override=format_override,
                progress=progress,
            )
    return fetch_source(
        source,
        model_dir,
        allow_pickle=allow_pickle,
        allowed_formats=allowed_formats,
        expected_digest=expected_digest,
        format_override=format_override,
        progress=progress,
    )
