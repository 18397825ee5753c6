"""Safe reading of `.zip` and `.tar.gz` packages.

Every entry passes `ArchiveGuard.admit` before a byte of it is used: absolute paths, `..`,
backslashes, links, devices, fifos, duplicates, oversize entries, too many entries, too many
bytes in all and absurd compression ratios (bombs) raise UnsafeArchive naming the entry.
Extraction never follows or creates links and opens every file with exclusive create, so a
checked path cannot be redirected. Members can also be hashed straight from the stream, so an
archive is validated without extracting it to disk.
"""

from __future__ import annotations

import hashlib
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, BinaryIO

from mlmodel_runtime.package.errors import UnsafeArchive
from mlmodel_runtime.package.models import path_problem

GIB = 1024**3
CHUNK_SIZE = 1024 * 1024


class ArchiveKind(StrEnum):
    ZIP = "zip"
    TAR_GZ = "tar.gz"

    @classmethod
    def from_name(cls, name: str) -> ArchiveKind | None:
        """The archive kind a file or key name implies (`.zip`, `.tar.gz`, `.tgz`), or None."""
        lower = name.lower()
        if lower.endswith(".zip"):
            return cls.ZIP
        if lower.endswith((".tar.gz", ".tgz")):
            return cls.TAR_GZ
        return None


class EntryType(StrEnum):
    FILE = "regular file"
    DIR = "directory"
    SYMLINK = "symbolic link"
    HARDLINK = "hard link"
    DEVICE = "device"
    FIFO = "fifo"
    OTHER = "unsupported entry type"


@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may hold. Defaults fit large models; tests pass small ones."""

    max_entries: int = 10_000
    max_entry_size: int = 64 * GIB
    max_total_size: int = 128 * GIB
    max_ratio: float = 200.0
    """Largest uncompressed/compressed ratio, checked once an entry passes `ratio_floor` bytes."""
    ratio_floor: int = 1024 * 1024


@dataclass
class ArchiveGuard:
    """Admits entries one at a time and keeps the running totals the limits apply to."""

    limits: ArchiveLimits = field(default_factory=ArchiveLimits)
    entries: int = 0
    total_size: int = 0
    names: set[str] = field(default_factory=set)

    def admit(self, raw_name: str, kind: EntryType, size: int, compressed_size: int | None) -> str | None:
        """The package path of a file entry, None for a directory; UnsafeArchive otherwise.

        `compressed_size` is the entry's stored size where the format records it (zip).
        """
        name = normalize_name(raw_name)
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise UnsafeArchive(raw_name, f"more than {self.limits.max_entries} entries")
        if name == "" and kind is EntryType.DIR:
            return None  # the archive root itself ("./")
        problem = path_problem(name)
        if problem:
            raise UnsafeArchive(raw_name, problem)
        if kind is EntryType.DIR:
            return None
        if kind is EntryType.OTHER:
            raise UnsafeArchive(raw_name, "unsupported entry type (a package holds regular files only)")
        if kind is not EntryType.FILE:
            raise UnsafeArchive(raw_name, f"{kind.value} not allowed in a package")
        if name in self.names:
            raise UnsafeArchive(raw_name, "entry appears twice")
        self.names.add(name)
        if size > self.limits.max_entry_size:
            raise UnsafeArchive(raw_name, f"{size} bytes is over the entry limit of {self.limits.max_entry_size}")
        self.total_size += size
        if self.total_size > self.limits.max_total_size:
            raise UnsafeArchive(raw_name, f"archive holds more than the limit of {self.limits.max_total_size} bytes")
        if compressed_size is not None:
            self.check_ratio(raw_name, size, compressed_size)
        return name

    def check_ratio(self, entry: str, expanded: int, compressed: int) -> None:
        if expanded > self.limits.ratio_floor and expanded > self.limits.max_ratio * max(compressed, 1):
            raise UnsafeArchive(
                entry,
                f"compression ratio {expanded / max(compressed, 1):.0f}:1 is over "
                f"{self.limits.max_ratio:.0f}:1 (archive bomb?)",
            )


def normalize_name(name: str) -> str:
    """An entry name as a package path: leading `./` and a trailing `/` removed."""
    while name.startswith("./"):
        name = name[2:]
    if name == ".":
        return ""
    return name.rstrip("/") if name.endswith("/") else name


def tar_entry_type(member: tarfile.TarInfo) -> EntryType:
    if member.isreg():
        return EntryType.FILE
    if member.isdir():
        return EntryType.DIR
    if member.issym():
        return EntryType.SYMLINK
    if member.islnk():
        return EntryType.HARDLINK
    if member.ischr() or member.isblk():
        return EntryType.DEVICE
    if member.isfifo():
        return EntryType.FIFO
    return EntryType.OTHER


def zip_entry_type(info: zipfile.ZipInfo) -> EntryType:
    mode = info.external_attr >> 16
    if info.is_dir():
        return EntryType.DIR
    if stat.S_IFMT(mode) == 0 or stat.S_ISREG(mode):
        return EntryType.FILE  # many writers (Windows tools, ZipFile.writestr) record no file type
    if stat.S_ISLNK(mode):
        return EntryType.SYMLINK
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return EntryType.DEVICE
    if stat.S_ISFIFO(mode):
        return EntryType.FIFO
    return EntryType.OTHER


@dataclass(frozen=True)
class Member:
    """A file entry of an archive after admission: package path, size and a change token."""

    path: str
    size: int
    token: str


# ----------------------------------------------------------------------------- zip


class ZipReader:
    """A zip package over any seekable binary stream (a local file or a ranged S3 reader)."""

    def __init__(self, fileobj: IO[bytes], limits: ArchiveLimits | None = None, name: str = "archive") -> None:
        self._name = name
        try:
            self._zip = zipfile.ZipFile(fileobj)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise UnsafeArchive(name, f"not a readable zip archive ({exc})") from None
        self.guard = ArchiveGuard(limits or ArchiveLimits())
        self._infos: dict[str, zipfile.ZipInfo] = {}
        for info in self._zip.infolist():
            if info.flag_bits & 0x1:
                raise UnsafeArchive(info.filename, "encrypted entries are not supported")
            path = self.guard.admit(info.filename, zip_entry_type(info), info.file_size, info.compress_size)
            if path is not None:
                self._infos[path] = info

    def members(self) -> dict[str, Member]:
        return {p: Member(p, i.file_size, f"{i.CRC:08x}-{i.header_offset}") for p, i in self._infos.items()}

    def iter_chunks(self, path: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The member's bytes; the CRC and declared size are enforced while reading."""
        info = self._infos[path]
        try:
            with self._zip.open(info) as member:
                read = 0
                while chunk := member.read(chunk_size):
                    read += len(chunk)
                    self.guard.check_ratio(info.filename, read, info.compress_size)
                    yield chunk
        except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
            raise UnsafeArchive(info.filename, f"corrupt entry ({exc})") from None

    def close(self) -> None:
        self._zip.close()


# ----------------------------------------------------------------------------- tar.gz


class _CountingReader:
    """Counts the compressed bytes tarfile pulls (it only calls read), for the ratio check."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        self.count += len(data)
        return data


@contextmanager
def _tar_errors(entry: str) -> Iterator[None]:
    """Map tarfile / gzip failures (truncated, corrupt, not gzip) to UnsafeArchive."""
    try:
        yield
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise UnsafeArchive(entry, f"not a readable tar.gz archive ({type(exc).__name__}: {exc})") from None


def iter_tar_gz(
    stream: BinaryIO, limits: ArchiveLimits | None = None, name: str = "archive"
) -> Iterator[tuple[Member, Iterator[bytes]]]:
    """Stream a `.tar.gz` once, admitting every entry; yields each file member with its chunks.

    Forward-only, so it works on an S3 GET body; memory stays at one chunk. A member's chunks
    are valid until the next member is requested (unread data is skipped).
    """
    guard = ArchiveGuard(limits or ArchiveLimits())
    counting = _CountingReader(stream)
    expanded = 0
    with _tar_errors(name):
        # Opened outside the `with` so that only opening errors are mapped here.
        tar = tarfile.open(fileobj=counting, mode="r|gz")  # type: ignore[call-overload]  # noqa: SIM115
    with tar:
        while True:
            with _tar_errors(name):
                member = tar.next()
            if member is None:
                return
            path = guard.admit(member.name, tar_entry_type(member), member.size, None)
            if path is None:
                continue
            with _tar_errors(member.name):
                extracted = tar.extractfile(member)
            if extracted is None:  # pragma: no cover - admit() lets only regular files through
                raise UnsafeArchive(member.name, "unreadable entry")

            def chunks(src: IO[bytes] = extracted, entry: str = member.name) -> Iterator[bytes]:
                nonlocal expanded
                while True:
                    with _tar_errors(entry):
                        chunk = src.read(CHUNK_SIZE)
                    if not chunk:
                        return
                    expanded += len(chunk)
                    guard.check_ratio(entry, expanded, counting.count)
                    yield chunk

            yield Member(path, member.size, f"{member.offset_data}-{member.mtime}"), chunks()


# ----------------------------------------------------------------------------- extraction


def write_member(
    dest_root: Path, path: str, chunks: Iterator[bytes], progress: Callable[[int], None] | None = None
) -> None:
    """Write one admitted member under `dest_root` (exclusive create, parents made, no links)."""
    target = dest_root.joinpath(*path.split("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "xb") as out:
        for chunk in chunks:
            out.write(chunk)
            if progress:
                progress(len(chunk))


def extract_zip(reader: ZipReader, dest_root: Path, progress: Callable[[int], None] | None = None) -> None:
    for path in reader.members():
        write_member(dest_root, path, reader.iter_chunks(path), progress)


def extract_tar_gz(
    stream: BinaryIO,
    dest_root: Path,
    limits: ArchiveLimits | None = None,
    progress: Callable[[int], None] | None = None,
    name: str = "archive",
) -> None:
    for member, chunks in iter_tar_gz(stream, limits, name):
        write_member(dest_root, member.path, chunks, progress)


def sha256_of(chunks: Iterator[bytes]) -> tuple[str, int]:
    """SHA-256 hex digest and byte count of a chunk stream."""
    h = hashlib.sha256()
    n = 0
    for chunk in chunks:
        h.update(chunk)
        n += len(chunk)
    return h.hexdigest(), n
