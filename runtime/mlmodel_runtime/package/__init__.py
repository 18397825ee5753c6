"""The model package format: models, errors, validation, fetching and the object-store adapter.

Dependency-light on purpose (no numpy, onnxruntime, torch or fastapi; see .importlinter), so the
operator imports it as well as the runtime. docs/contracts.md section 1 is the specification.
"""

from mlmodel_runtime.package.archive import ArchiveLimits
from mlmodel_runtime.package.cache import CacheKey, DigestCache
from mlmodel_runtime.package.errors import (
    ALL_ERRORS,
    EXIT_USAGE,
    AccessDenied,
    DigestMismatch,
    FormatNotAllowed,
    FormatUnsupported,
    ManifestInvalid,
    MetadataInvalid,
    PackageDigestMismatch,
    PackageError,
    PackageNotFound,
    SizeMismatch,
    StoreUnavailable,
    UnsafeArchive,
)
from mlmodel_runtime.package.fetch import fetch_package, find_fetched, package_dir
from mlmodel_runtime.package.models import (
    MANIFEST_FILE,
    METADATA_FILE,
    OPTIONAL_FILES,
    REQUIRED_FILES,
    Datatype,
    FileEntry,
    Manifest,
    Metadata,
    ModelFormat,
    TensorSpec,
    package_digest,
    parse_manifest,
    parse_metadata,
)
from mlmodel_runtime.package.source import InvalidUri, PackageSource, PackageUri, open_source, parse_uri
from mlmodel_runtime.package.store import ObjectInfo, ObjectStore
from mlmodel_runtime.package.verify import ValidatedPackage, validate_package

__all__ = [
    "ALL_ERRORS",
    "EXIT_USAGE",
    "MANIFEST_FILE",
    "METADATA_FILE",
    "OPTIONAL_FILES",
    "REQUIRED_FILES",
    "AccessDenied",
    "ArchiveLimits",
    "CacheKey",
    "Datatype",
    "DigestCache",
    "DigestMismatch",
    "FileEntry",
    "FormatNotAllowed",
    "FormatUnsupported",
    "InvalidUri",
    "Manifest",
    "ManifestInvalid",
    "Metadata",
    "MetadataInvalid",
    "ModelFormat",
    "ObjectInfo",
    "ObjectStore",
    "PackageDigestMismatch",
    "PackageError",
    "PackageNotFound",
    "PackageSource",
    "PackageUri",
    "SizeMismatch",
    "StoreUnavailable",
    "TensorSpec",
    "UnsafeArchive",
    "ValidatedPackage",
    "fetch_package",
    "find_fetched",
    "open_source",
    "package_digest",
    "package_dir",
    "parse_manifest",
    "parse_metadata",
    "parse_uri",
    "validate_package",
]
