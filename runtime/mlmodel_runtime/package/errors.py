"""Why a package cannot be used, as one exception class per reason of docs/contracts.md.

The operator copies `reason` into its `Stalled` condition and `message` into status and events;
the runtime's `fetch` exits with `exit_code`. Messages name the file and the values that differ
and never carry credentials: callers build them from bucket, key and path only.
"""

from __future__ import annotations

from typing import ClassVar

# The contract's exit codes (docs/contracts.md): 0 and 1 here, 2 for usage, and one per failure class below.
EXIT_OK = 0
EXIT_FAILED = 1
"""Anything else that stops the runtime (e.g. a model the framework cannot load)."""
EXIT_USAGE = 2
"""Exit code for a usage or settings error (bad flags, a URI that cannot be parsed)."""


class PackageError(Exception):
    """Base of every package failure; `reason` is the CamelCase name from the contract."""

    reason: ClassVar[str] = "PackageError"
    exit_code: ClassVar[int] = 1
    temporary: ClassVar[bool] = False
    """True when retrying later may succeed without anyone changing anything."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class PackageNotFound(PackageError):
    """The URI, the manifest or a listed file does not exist."""

    reason = "PackageNotFound"
    exit_code = 10


class AccessDenied(PackageError):
    """The store refused the credentials (or there were none)."""

    reason = "AccessDenied"
    exit_code = 11


class ManifestInvalid(PackageError):
    """`deployment_manifest.json` is bad JSON, lacks fields, has bad paths or misses files."""

    reason = "ManifestInvalid"
    exit_code = 12


class MetadataInvalid(PackageError):
    """`metadata.json` is bad JSON, names no valid format or has malformed tensor specs."""

    reason = "MetadataInvalid"
    exit_code = 12


class SizeMismatch(PackageError):
    """A file's size differs from the one the manifest lists."""

    reason = "SizeMismatch"
    exit_code = 13

    def __init__(self, path: str, expected: int, found: int) -> None:
        super().__init__(f"{path}: size expected {expected} bytes, found {found}")
        self.path = path
        self.expected = expected
        self.found = found


class DigestMismatch(PackageError):
    """A file's SHA-256 differs from the one the manifest lists."""

    reason = "DigestMismatch"
    exit_code = 13

    def __init__(self, path: str, expected: str, found: str) -> None:
        super().__init__(f"{path}: sha256 expected {expected} found {found}")
        self.path = path
        self.expected = expected
        self.found = found


class PackageDigestMismatch(PackageError):
    """The manifest hashes to another package digest than the one expected."""

    reason = "PackageDigestMismatch"
    exit_code = 13

    def __init__(self, expected: str, found: str) -> None:
        super().__init__(f"package digest expected {expected} found {found} (the package changed after validation)")
        self.expected = expected
        self.found = found


class UnsafeArchive(PackageError):
    """An archive entry is absolute, climbs out with `..`, is a link or device, or is too big."""

    reason = "UnsafeArchive"
    exit_code = 14

    def __init__(self, entry: str, problem: str) -> None:
        super().__init__(f"{entry}: {problem}")
        self.entry = entry
        self.problem = problem


class FormatUnsupported(PackageError):
    """A model format this build does not know or cannot serve."""

    reason = "FormatUnsupported"
    exit_code = 15


class FormatNotAllowed(PackageError):
    """A pickle-based format while pickle is not allowed."""

    reason = "FormatNotAllowed"
    exit_code = 15


class StoreUnavailable(PackageError):
    """The store is unreachable, timing out or throttling: retry later."""

    reason = "StoreUnavailable"
    exit_code = 16
    temporary = True


class ExamplesMismatch(PackageError):
    """The loaded model's answers to the package's examples (examples.json) differ from the expected outputs
    beyond their tolerance: the files are intact but the model does not compute what the package says."""

    reason = "ExamplesMismatch"
    exit_code = 17


ALL_ERRORS: tuple[type[PackageError], ...] = (
    PackageNotFound,
    AccessDenied,
    ManifestInvalid,
    MetadataInvalid,
    SizeMismatch,
    DigestMismatch,
    PackageDigestMismatch,
    UnsafeArchive,
    FormatUnsupported,
    FormatNotAllowed,
    StoreUnavailable,
    ExamplesMismatch,
)
"""Every reason, in the contract's order (for docs and tests)."""
