"""Where a package lives: an S3 prefix, an S3 archive object, a local directory or archive.

`open_source(uri)` parses the URI and returns a `PackageSource` that lists the package's files
(path, size, change token) and streams their bytes; the verifier and the fetcher need nothing
else. A `.tar.gz` has no index, so its source reads the stream once, admitting and hashing every
member on the way (`precomputed_sha256`), and reads it again only to extract.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO
from urllib.parse import unquote, urlsplit

from mlmodel_runtime.package.archive import (
    ArchiveKind,
    ArchiveLimits,
    ZipReader,
    extract_zip,
    iter_tar_gz,
    sha256_of,
    write_member,
)
from mlmodel_runtime.package.errors import PackageNotFound
from mlmodel_runtime.package.models import MANIFEST_FILE, MAX_JSON_BYTES, METADATA_FILE
from mlmodel_runtime.package.store import ObjectStore, Progress

CHUNK_SIZE = 1024 * 1024
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,254}$")


class InvalidUri(ValueError):
    """The package URI cannot be parsed (a usage / settings error, exit code 2)."""


@dataclass(frozen=True)
class SourceFile:
    """One file of a package as the source lists it. `etag` changes whenever the content may."""

    path: str
    size: int
    etag: str


@dataclass(frozen=True)
class PackageUri:
    """A parsed package URI: `s3://bucket/key` or a local path, and its archive kind if any."""

    scheme: str  # "s3" or "file"
    bucket: str
    key: str  # S3 key or prefix (a prefix always ends in "/" unless empty); local: the path
    archive: ArchiveKind | None

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.scheme == "s3" else self.key


def parse_uri(uri: str) -> PackageUri:
    """Parse `s3://bucket/prefix/`, `s3://bucket/x.zip|.tar.gz|.tgz`, `file://...` or a path."""
    uri = uri.strip()
    if not uri:
        raise InvalidUri("empty package URI")
    if uri.startswith("s3://"):
        parts = urlsplit(uri)
        bucket, key = parts.netloc, parts.path.lstrip("/")
        if parts.query or parts.fragment:
            raise InvalidUri(f"{uri}: query strings and fragments are not allowed in a package URI")
        if not _BUCKET.match(bucket):
            raise InvalidUri(f"{uri}: {bucket!r} is not a valid bucket name")
        archive = ArchiveKind.from_name(key)
        if archive is None and key and not key.endswith("/"):
            key += "/"  # s3://b/models/7 means the prefix models/7/, not models/70/
        return PackageUri("s3", bucket, key, archive)
    if uri.startswith("file://"):
        uri = unquote(uri.removeprefix("file://"))
    elif "://" in uri:
        raise InvalidUri(f"{uri}: unsupported scheme (use s3://, file:// or a local path)")
    return PackageUri("file", "", uri, ArchiveKind.from_name(uri))


class PackageSource(ABC):
    """The files of one package, wherever they are. Use as a context manager."""

    uri: str
    """Where the package is, without credentials (for messages)."""
    cache_location: str
    """The location part of DigestCache keys (includes the endpoint for S3)."""
    random_access: bool = True
    """False when reading one file means reading the whole archive (tar.gz)."""

    @abstractmethod
    def list_files(self) -> dict[str, SourceFile]:
        """Every file of the package by path; PackageNotFound when there is no package at all."""

    @abstractmethod
    def iter_chunks(self, path: str) -> Iterator[bytes]:
        """The bytes of one listed file, in chunks."""

    @abstractmethod
    def materialize(self, dest: Path, paths: set[str], progress: Progress | None = None) -> None:
        """Write the files `paths` (archives: every member) under the empty directory `dest`."""

    def precomputed_sha256(self, path: str) -> str | None:
        """The digest when listing already computed it (tar.gz), else None."""
        return None

    def read_bytes(self, path: str, limit: int = MAX_JSON_BYTES) -> bytes:
        """A small file in full; ValueError when it holds more than `limit` bytes."""
        buf = bytearray()
        for chunk in self.iter_chunks(path):
            buf += chunk
            if len(buf) > limit:
                raise ValueError(f"{path} is larger than {limit} bytes")
        return bytes(buf)

    def close(self) -> None:  # noqa: B027 - most sources hold nothing open
        """Release what the source holds open."""

    def __enter__(self) -> PackageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalDirSource(PackageSource):
    """A package directory on local disk. Symbolic links to files are followed (your own disk)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.uri = str(self.root)
        self.cache_location = f"file:{self.root.resolve()}"

    def list_files(self) -> dict[str, SourceFile]:
        if self.root.is_file():
            raise PackageNotFound(f"{self.root}: a file, not a package directory or a .zip / .tar.gz / .tgz archive")
        if not self.root.is_dir():
            raise PackageNotFound(f"{self.root}: no such directory")
        files: dict[str, SourceFile] = {}
        for dirpath, _dirs, names in os.walk(self.root):
            for name in names:
                full = Path(dirpath, name)
                try:
                    st = full.stat()
                except FileNotFoundError:
                    continue  # a dangling link or a file removed while listing
                rel = full.relative_to(self.root).as_posix()
                etag = f"{st.st_dev}-{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"
                files[rel] = SourceFile(rel, st.st_size, etag)
        return files

    def _path(self, path: str) -> Path:
        return self.root.joinpath(*path.split("/"))

    def iter_chunks(self, path: str) -> Iterator[bytes]:
        try:
            with open(self._path(path), "rb") as f:
                while chunk := f.read(CHUNK_SIZE):
                    yield chunk
        except FileNotFoundError:
            raise PackageNotFound(f"{path}: not found in {self.root}") from None

    def materialize(self, dest: Path, paths: set[str], progress: Progress | None = None) -> None:
        for path in sorted(paths):
            write_member(dest, path, self.iter_chunks(path), progress)


class S3PrefixSource(PackageSource):
    """A package under a prefix of an S3-compatible bucket."""

    def __init__(self, store: ObjectStore, bucket: str, prefix: str) -> None:
        self.store = store
        self.bucket = bucket
        self.prefix = prefix
        self.uri = f"s3://{bucket}/{prefix}"
        self.cache_location = f"{store.endpoint}|{self.uri}"

    def list_files(self) -> dict[str, SourceFile]:
        files = {
            obj.key[len(self.prefix) :]: SourceFile(obj.key[len(self.prefix) :], obj.size, obj.etag)
            for obj in self.store.list(self.bucket, self.prefix)
        }
        if not files:
            raise PackageNotFound(f"{self.uri}: no objects under this prefix")
        return files

    def iter_chunks(self, path: str) -> Iterator[bytes]:
        return self.store.iter_chunks(self.bucket, self.prefix + path, chunk_size=CHUNK_SIZE)

    def materialize(self, dest: Path, paths: set[str], progress: Progress | None = None) -> None:
        for path in sorted(paths):
            target = dest.joinpath(*path.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            self.store.download(self.bucket, self.prefix + path, target, progress=progress)


class ZipSource(PackageSource):
    """A `.zip` package, local or in S3 (read with ranged GETs: no download to validate it)."""

    def __init__(
        self,
        uri: str,
        cache_location: str,
        etag: str,
        opener: Callable[[], IO[bytes]],
        limits: ArchiveLimits | None = None,
    ) -> None:
        self.uri = uri
        self.cache_location = cache_location
        self._etag = etag
        self._fileobj = opener()
        try:
            self._reader = ZipReader(self._fileobj, limits, name=uri)
        except BaseException:
            self._fileobj.close()
            raise

    def list_files(self) -> dict[str, SourceFile]:
        return {p: SourceFile(p, m.size, f"{self._etag}:{m.token}") for p, m in self._reader.members().items()}

    def iter_chunks(self, path: str) -> Iterator[bytes]:
        return self._reader.iter_chunks(path, CHUNK_SIZE)

    def materialize(self, dest: Path, paths: set[str], progress: Progress | None = None) -> None:
        extract_zip(self._reader, dest, progress)

    def close(self) -> None:
        self._reader.close()
        self._fileobj.close()


class TarGzSource(PackageSource):
    """A `.tar.gz` package, local or in S3, read as a stream (one pass lists and hashes it)."""

    random_access = False

    def __init__(
        self,
        uri: str,
        cache_location: str,
        opener: Callable[[], BinaryIO],
        limits: ArchiveLimits | None = None,
    ) -> None:
        self.uri = uri
        self.cache_location = cache_location
        self._opener = opener
        self._limits = limits
        self._files: dict[str, SourceFile] | None = None
        self._digests: dict[str, str] = {}
        self._small: dict[str, bytes] = {}

    def _scan(self) -> dict[str, SourceFile]:
        files: dict[str, SourceFile] = {}
        with self._opener() as stream:
            for member, chunks in iter_tar_gz(stream, self._limits, name=self.uri):
                if member.path in (MANIFEST_FILE, METADATA_FILE) and member.size <= MAX_JSON_BYTES:
                    data = b"".join(chunks)
                    self._small[member.path] = data
                    digest, size = sha256_of(iter([data]))
                else:
                    digest, size = sha256_of(chunks)
                self._digests[member.path] = digest
                files[member.path] = SourceFile(member.path, size, member.token)
        return files

    def list_files(self) -> dict[str, SourceFile]:
        if self._files is None:
            self._files = self._scan()
        return self._files

    def precomputed_sha256(self, path: str) -> str | None:
        self.list_files()
        return self._digests.get(path)

    def read_bytes(self, path: str, limit: int = MAX_JSON_BYTES) -> bytes:
        self.list_files()
        if path in self._small and len(self._small[path]) <= limit:
            return self._small[path]
        return super().read_bytes(path, limit)

    def iter_chunks(self, path: str) -> Iterator[bytes]:
        # Rarely needed (the scan hashed everything): stream up to the member.
        with self._opener() as stream:
            for member, chunks in iter_tar_gz(stream, self._limits, name=self.uri):
                if member.path == path:
                    yield from chunks
                    return
        raise PackageNotFound(f"{path}: not in {self.uri}")

    def materialize(self, dest: Path, paths: set[str], progress: Progress | None = None) -> None:
        with self._opener() as stream:
            for member, chunks in iter_tar_gz(stream, self._limits, name=self.uri):
                write_member(dest, member.path, chunks, progress)


def open_source(uri: str, *, store: ObjectStore | None = None, limits: ArchiveLimits | None = None) -> PackageSource:
    """The source for a package URI. S3 URIs use `store` (default: one from the environment).

    Raises InvalidUri for a URI that cannot be parsed, PackageNotFound / AccessDenied /
    StoreUnavailable when an archive object cannot be reached.
    """
    parsed = parse_uri(uri)
    if parsed.scheme == "file":
        path = Path(parsed.key)
        location = f"file:{path.resolve()}"
        if parsed.archive is None:
            return LocalDirSource(path)
        if not path.is_file():
            raise PackageNotFound(f"{path}: no such file")
        st = path.stat()
        etag = f"{st.st_dev}-{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"
        if parsed.archive is ArchiveKind.ZIP:
            return ZipSource(str(path), location, etag, lambda: open(path, "rb"), limits)
        return TarGzSource(str(path), location, lambda: open(path, "rb"), limits)

    store = store or ObjectStore()
    if parsed.archive is None:
        return S3PrefixSource(store, parsed.bucket, parsed.key)
    info = store.head(parsed.bucket, parsed.key)
    location = f"{store.endpoint}|{parsed}"
    if parsed.archive is ArchiveKind.ZIP:
        return ZipSource(
            str(parsed),
            location,
            info.etag,
            lambda: store.open_ranged(parsed.bucket, parsed.key, info.size),
            limits,
        )
    return TarGzSource(str(parsed), location, lambda: store.open_stream(parsed.bucket, parsed.key), limits)
