"""Crafted zip and tar.gz archives are refused with UnsafeArchive naming the entry: `../x`,
`/etc/x`, backslashes, symlinks, hardlinks, devices, fifos, duplicates, oversize entries, too
many bytes or entries, compression bombs, corrupt and truncated archives. Refusal happens
before anything is written outside the destination; a well-formed archive (also with `./`
names and directory entries) extracts to exactly its files."""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest
from mlmodel_runtime.package import UnsafeArchive, validate_package
from mlmodel_runtime.package.archive import ArchiveLimits, ZipReader, extract_tar_gz, extract_zip, iter_tar_gz

from tests.support.packages import build_package, make_onnx_mlp

MIB = 1024 * 1024


def make_zip(path: Path, entries: list[tuple[str, bytes, int | None]]) -> Path:
    """entries: (name, data, unix mode or None for a regular file)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns on the duplicate names we craft
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data, mode in entries:
                info = zipfile.ZipInfo(name)
                info.compress_type = zipfile.ZIP_DEFLATED
                if mode is not None:
                    info.external_attr = mode << 16
                zf.writestr(info, data)
    return path


def make_tar_gz(path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tf.addfile(entry)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def read_zip(path: Path, limits: ArchiveLimits | None = None) -> None:
    with open(path, "rb") as f:
        reader = ZipReader(f, limits, name=str(path))
        for member in reader.members():
            for _ in reader.iter_chunks(member):
                pass


def read_tar_gz(path: Path, limits: ArchiveLimits | None = None) -> None:
    with open(path, "rb") as f:
        for _member, chunks in iter_tar_gz(f, limits, name=str(path)):
            for _ in chunks:
                pass


@pytest.mark.parametrize(
    ("name", "mode", "problem"),
    [
        pytest.param("../x", None, "'..' in path", id="dotdot"),
        pytest.param("a/../../x", None, "'..' in path", id="inner-dotdot"),
        pytest.param("/etc/x", None, "absolute path", id="absolute"),
        pytest.param("dir\\x", None, "backslash", id="backslash"),
        pytest.param("link", stat.S_IFLNK | 0o777, "symbolic link not allowed", id="symlink"),
        pytest.param("dev", stat.S_IFCHR | 0o600, "device not allowed", id="char-device"),
        pytest.param("blk", stat.S_IFBLK | 0o600, "device not allowed", id="block-device"),
        pytest.param("pipe", stat.S_IFIFO | 0o600, "fifo not allowed", id="fifo"),
        pytest.param("sock", stat.S_IFSOCK | 0o600, "unsupported entry type", id="socket"),
    ],
)
def test_zip_entries_that_could_escape_or_are_not_files_are_refused(
    tmp_path: Path, name: str, mode: int | None, problem: str
) -> None:
    archive = make_zip(tmp_path / "bad.zip", [("model.onnx", b"ok", None), (name, b"/etc/passwd", mode)])
    with pytest.raises(UnsafeArchive) as err:
        read_zip(archive)
    assert err.value.entry == name
    assert problem in err.value.message


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        pytest.param(("../x", b"x"), "'..' in path", id="dotdot"),
        pytest.param(("/etc/x", b"x"), "absolute path", id="absolute"),
        pytest.param(special("link", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link not allowed", id="symlink"),
        pytest.param(special("hard", tarfile.LNKTYPE, "model.onnx"), "hard link not allowed", id="hardlink"),
        pytest.param(special("dev", tarfile.CHRTYPE), "device not allowed", id="char-device"),
        pytest.param(special("blk", tarfile.BLKTYPE), "device not allowed", id="block-device"),
        pytest.param(special("pipe", tarfile.FIFOTYPE), "fifo not allowed", id="fifo"),
        pytest.param(special("../dir", tarfile.DIRTYPE), "'..' in path", id="dotdot-directory"),
        pytest.param(("model.onnx", b"again"), "entry appears twice", id="duplicate"),
    ],
)
def test_tar_entries_that_could_escape_or_are_not_files_are_refused(
    tmp_path: Path, entry: tarfile.TarInfo | tuple[str, bytes], problem: str
) -> None:
    archive = make_tar_gz(tmp_path / "bad.tar.gz", [("model.onnx", b"ok"), entry])
    with pytest.raises(UnsafeArchive) as err:
        read_tar_gz(archive)
    assert problem in err.value.message
    assert err.value.entry == (entry.name if isinstance(entry, tarfile.TarInfo) else entry[0])


def test_zip_duplicate_names_are_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "dup.zip", [("model.onnx", b"a", None), ("model.onnx", b"b", None)])
    with pytest.raises(UnsafeArchive, match=r"model.onnx: entry appears twice"):
        read_zip(archive)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
@pytest.mark.parametrize(
    ("limits", "problem"),
    [
        pytest.param(ArchiveLimits(max_entry_size=1000), "2000 bytes is over the entry limit of 1000", id="entry"),
        pytest.param(ArchiveLimits(max_total_size=3000), "more than the limit of 3000 bytes", id="total"),
        pytest.param(ArchiveLimits(max_entries=2), "more than 2 entries", id="entries"),
    ],
)
def test_size_and_count_limits(tmp_path: Path, kind: str, limits: ArchiveLimits, problem: str) -> None:
    files = [("a", b"1" * 2000), ("b", b"2" * 2000), ("c", b"3")]
    if kind == "zip":
        archive = make_zip(tmp_path / "big.zip", [(n, d, None) for n, d in files])
        reader = read_zip
    else:
        archive = make_tar_gz(tmp_path / "big.tar.gz", list(files))
        reader = read_tar_gz
    with pytest.raises(UnsafeArchive) as err:
        reader(archive, limits)
    assert problem in err.value.message


def test_zip_bomb_is_refused_from_its_directory_before_inflating(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "bomb.zip", [("model.onnx", bytes(50 * MIB), None)])
    assert archive.stat().st_size < MIB
    with pytest.raises(UnsafeArchive) as err:
        read_zip(archive)
    assert err.value.entry == "model.onnx"
    assert "compression ratio" in err.value.message
    assert "over 200:1" in err.value.message


def test_tar_gz_bomb_is_refused_while_streaming(tmp_path: Path) -> None:
    archive = make_tar_gz(tmp_path / "bomb.tar.gz", [("model.onnx", bytes(50 * MIB))])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(UnsafeArchive) as err, open(archive, "rb") as f:
        extract_tar_gz(f, dest, name=str(archive))
    assert err.value.entry == "model.onnx"
    assert "compression ratio" in err.value.message
    written = (dest / "model.onnx").stat().st_size if (dest / "model.onnx").exists() else 0
    assert written < 50 * MIB, "extraction stops at the ratio limit, not at the end of the bomb"


def test_bomb_is_refused_by_validate_package_with_the_contract_reason(tmp_path: Path) -> None:
    archive = make_tar_gz(tmp_path / "bomb.tar.gz", [("deployment_manifest.json", bytes(20 * MIB))])
    with pytest.raises(UnsafeArchive) as err:
        validate_package(str(archive))
    assert err.value.reason == "UnsafeArchive"
    assert err.value.exit_code == 14


@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
def test_corrupt_and_truncated_archives_are_refused(tmp_path: Path, suffix: str) -> None:
    good = build_package(tmp_path / "pkg", make_onnx_mlp(tmp_path / "m.onnx"), archive=suffix.lstrip("."))
    data = good.read_bytes()
    truncated = tmp_path / f"truncated{suffix}"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    garbage = tmp_path / f"garbage{suffix}"
    garbage.write_bytes(b"this is not an archive at all" * 10)
    for archive in (truncated, garbage):
        with pytest.raises(UnsafeArchive, match=r"not a readable|corrupt"):
            validate_package(str(archive))


def test_nothing_is_written_outside_the_destination(tmp_path: Path) -> None:
    archive = make_tar_gz(tmp_path / "evil.tar.gz", [("ok.txt", b"fine"), ("../escaped.txt", b"pwned")])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchive), open(archive, "rb") as f:
        extract_tar_gz(f, dest)
    assert not (tmp_path / "escaped.txt").exists()
    assert [p.name for p in dest.iterdir()] == ["ok.txt"]


def test_well_formed_archives_extract_to_exactly_their_files(tmp_path: Path) -> None:
    files = {"model.onnx": b"\x00weights" * 100, "sub/dir/README.md": b"# hi"}
    with tarfile.open(tmp_path / "ok.tar.gz", "w:gz") as tf:
        tf.addfile(special("./", tarfile.DIRTYPE))
        tf.addfile(special("./sub", tarfile.DIRTYPE))
        for name, data in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    make_zip(tmp_path / "ok.zip", [("sub/", b"", stat.S_IFDIR | 0o755)] + [(n, d, None) for n, d in files.items()])

    out_tar, out_zip = tmp_path / "out-tar", tmp_path / "out-zip"
    out_tar.mkdir()
    out_zip.mkdir()
    with open(tmp_path / "ok.tar.gz", "rb") as f:
        extract_tar_gz(f, out_tar)
    with open(tmp_path / "ok.zip", "rb") as f:
        extract_zip(ZipReader(f), out_zip)
    for out in (out_tar, out_zip):
        found = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert found == files
        assert not any(p.is_symlink() for p in out.rglob("*"))


def test_gzip_of_a_non_tar_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "plain.tar.gz"
    archive.write_bytes(gzip.compress(b"just some text, not a tar stream" * 100))
    with pytest.raises(UnsafeArchive, match=r"not a readable tar.gz"):
        read_tar_gz(archive)
