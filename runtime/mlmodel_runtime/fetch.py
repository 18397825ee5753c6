"""Fetch and verify the package named by the settings: settings, progress logs and exit codes.

The mechanics (listing, multipart concurrent download, SHA-256 of every file, archive safety,
the all-or-nothing install) live in `mlmodel_runtime.package`; this module wires them to the
runtime's settings and turns failures into the contract's exit codes.

A local package directory (development) is verified in place and served from where it is;
`s3://` packages and archives are installed under MLMODEL_MODEL_DIR (a complete copy with the
same digest, e.g. from the init container, is reused).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

from pydantic import ValidationError

from mlmodel_runtime.backends.errors import ModelLoadError
from mlmodel_runtime.package import EXIT_USAGE, FormatUnsupported, ModelFormat, PackageError
from mlmodel_runtime.package.errors import EXIT_FAILED as EXIT_FAILED  # the table is the package contract's
from mlmodel_runtime.package.errors import EXIT_OK as EXIT_OK
from mlmodel_runtime.package.fetch import fetch_package
from mlmodel_runtime.package.source import InvalidUri, parse_uri
from mlmodel_runtime.package.verify import ValidatedPackage, validate_package
from mlmodel_runtime.settings import FetchSettings

log = logging.getLogger(__name__)

def exit_code_for(exc: BaseException) -> int:
    """The contract's exit code for a failure (docs/contracts.md, failure reasons)."""
    if isinstance(exc, PackageError):
        return exc.exit_code
    if isinstance(exc, InvalidUri | ValidationError):
        return EXIT_USAGE
    return EXIT_FAILED


def reason_for(exc: BaseException) -> str:
    if isinstance(exc, PackageError):
        return exc.reason
    if isinstance(exc, InvalidUri | ValidationError):
        return "InvalidSettings"
    return type(exc).__name__


class ProgressLog:
    """Byte counter for downloads (called from several transfer threads); logs at most every `every_s`."""

    def __init__(self, uri: str, every_s: float = 2.0) -> None:
        self._uri = uri
        self._every = every_s
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._last = self._started
        self.bytes = 0

    def __call__(self, count: int) -> None:
        with self._lock:
            self.bytes += count
            now = time.monotonic()
            if now - self._last < self._every:
                return
            self._last = now
            done = self.bytes
        elapsed = now - self._started
        log.info(
            "downloading",
            extra={"uri": self._uri, "bytes": done, "mib_per_s": round(done / 2**20 / max(elapsed, 1e-6), 1)},
        )


def is_local_dir(uri: str) -> bool:
    parsed = parse_uri(uri)
    return parsed.scheme == "file" and parsed.archive is None


def fetch(settings: FetchSettings) -> ValidatedPackage:
    """Download (or, for a local directory, check in place) and verify the package.

    Raises the package module's PackageError (with `.reason` and `.exit_code`) or InvalidUri.
    """
    started = time.monotonic()
    uri = settings.package
    override = _format_override(settings.format)
    digest = settings.package_digest or None
    log.info("fetching package", extra={"uri": uri, "model_dir": settings.model_dir})
    if is_local_dir(uri):
        package = validate_package(
            uri, allow_pickle=settings.allow_pickle, expected_digest=digest, format_override=override
        )
        path = Path(parse_uri(uri).key)
    else:
        progress = ProgressLog(uri)
        package = fetch_package(
            uri,
            Path(settings.model_dir),
            allow_pickle=settings.allow_pickle,
            expected_digest=digest,
            format_override=override,
            progress=progress,
        )
        assert package.path is not None
        path = package.path
    for warning in package.warnings:
        log.warning(warning)
    log.info(
        "package verified",
        extra={
            "uri": uri,
            "digest": package.digest,
            "format": package.format.value,
            "bytes": package.total_size,
            "path": str(path),
            "fetch_s": round(time.monotonic() - started, 3),
        },
    )
    return dataclasses.replace(package, path=path)


def run_fetch(settings: FetchSettings) -> int:
    """The `fetch` command: 0 when the package is installed and verified, else its exit code."""
    try:
        fetch(settings)
    except Exception as exc:
        log_failure("fetch failed", exc)
        write_termination_message(settings.termination_message_path, exc)
        return exit_code_for(exc)
    return EXIT_OK


def write_termination_message(path: str, exc: BaseException) -> None:
    """`<reason>: <message>` into the container's termination log, which the kubelet copies into the pod's
    `lastState.terminated.message` (the operator quotes it when a revision fails). Only into a file that
    exists (the kubelet creates it in a pod; outside one nothing is created); best effort."""
    if not path:
        return
    try:
        with open(path, "r+", encoding="utf-8") as f:  # r+: never creates the file
            f.truncate()
            f.write(f"{reason_for(exc)}: {exc}"[:4000])  # the kubelet keeps at most 4096 bytes
    except OSError:
        pass


def log_failure(what: str, exc: BaseException) -> None:
    """One error line with the contract's reason; a traceback only for unexpected failures."""
    expected = isinstance(exc, PackageError | InvalidUri | ValidationError | ModelLoadError)
    log.error(
        f"{what}: {exc}",
        extra={"reason": reason_for(exc), "exit_code": exit_code_for(exc)},
        exc_info=None if expected else exc,
    )


def _format_override(name: str) -> ModelFormat | None:
    if not name:
        return None
    try:
        return ModelFormat(name)
    except ValueError:
        known = ", ".join(f.value for f in ModelFormat)
        raise FormatUnsupported(f"MLMODEL_FORMAT {name!r} is not a known format ({known})") from None
