"""fetch_package from the real object store installs all or nothing: prefix, zip and tar.gz
packages land verified under `sha256-<hex>/` with the marker written last; a second fetch
reuses the copy without downloading; a corrupted object, a download failing midway, a fetch
process killed with SIGKILL, an expected digest that differs, and a directory whose marker was
never written all leave nothing that looks complete, and the next fetch cleans up after them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlmodel_runtime.package import (
    DigestMismatch,
    ObjectStore,
    PackageDigestMismatch,
    fetch_package,
    find_fetched,
    package_dir,
    validate_package,
)
from mlmodel_runtime.package.fetch import marker_path
from mlmodel_runtime.package.models import MANIFEST_FILE

from tests.support.packages import archive_package, corrupt_file, upload_dir, upload_file
from tests.support.waiting import wait_for

pytestmark = pytest.mark.objectstore


def entries(model_dir: Path) -> list[str]:
    return sorted(p.name for p in model_dir.iterdir()) if model_dir.exists() else []


def package_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("form", ["prefix", "zip", "tar.gz"])
def test_fetch_installs_a_verified_copy_and_marks_it_last(
    s3: Any, bucket: str, store: ObjectStore, mlp_dir: Path, tmp_path: Path, form: str
) -> None:
    if form == "prefix":
        uri = upload_dir(s3, bucket, "mlp/1", mlp_dir)
    else:
        uri = upload_file(s3, bucket, f"mlp-1.{form}", archive_package(mlp_dir, form))
    model_dir = tmp_path / "models"
    moved: list[int] = []

    fetched = fetch_package(uri, model_dir, store=store, progress=moved.append)

    expected = validate_package(str(mlp_dir))
    assert fetched.digest == expected.digest
    assert fetched.path == package_dir(model_dir, expected.digest)
    assert package_files(fetched.path) == package_files(mlp_dir)
    assert entries(model_dir) == sorted([fetched.path.name, marker_path(model_dir, fetched.digest).name])
    assert sum(moved) >= sum(len(b) for b in package_files(mlp_dir).values()) - len(
        (mlp_dir / MANIFEST_FILE).read_bytes()
    )
    found = find_fetched(model_dir)
    assert found is not None
    assert (found.digest, found.path) == (fetched.digest, fetched.path)


def test_a_second_fetch_reuses_the_complete_copy(
    s3: Any, bucket: str, store: ObjectStore, mlp_dir: Path, tmp_path: Path
) -> None:
    uri = upload_dir(s3, bucket, "mlp/1", mlp_dir)
    model_dir = tmp_path / "models"
    first = fetch_package(uri, model_dir, store=store)
    assert first.path is not None
    stamp = (first.path / "model.onnx").stat().st_mtime_ns
    moved: list[int] = []
    second = fetch_package(uri, model_dir, store=store, progress=moved.append, expected_digest=first.digest)
    assert moved == [], "nothing is downloaded again"
    assert second.path == first.path
    assert (first.path / "model.onnx").stat().st_mtime_ns == stamp


def test_a_corrupted_object_leaves_nothing_behind(
    s3: Any, bucket: str, store: ObjectStore, mlp_dir: Path, tmp_path: Path
) -> None:
    corrupt_file(mlp_dir, "model.onnx")
    uri = upload_dir(s3, bucket, "mlp/1", mlp_dir)
    model_dir = tmp_path / "models"
    with pytest.raises(DigestMismatch, match=r"^model\.onnx: sha256 expected"):
        fetch_package(uri, model_dir, store=store)
    assert entries(model_dir) == []
    assert find_fetched(model_dir) is None


@pytest.mark.parametrize("form", ["prefix", "tar.gz"])
def test_a_download_failing_midway_leaves_nothing_behind(
    s3: Any, bucket: str, store: ObjectStore, mlp_dir: Path, tmp_path: Path, form: str
) -> None:
    if form == "prefix":
        uri = upload_dir(s3, bucket, "mlp/1", mlp_dir)
    else:
        uri = upload_file(s3, bucket, "mlp-1.tar.gz", archive_package(mlp_dir, "tar.gz"))
    model_dir = tmp_path / "models"

    class ConnectionDropped(Exception):
        pass

    def drop(_n: int) -> None:
        raise ConnectionDropped

    with pytest.raises(ConnectionDropped):
        fetch_package(uri, model_dir, store=store, progress=drop)
    assert entries(model_dir) == []
    assert find_fetched(model_dir) is None


def test_an_expected_digest_that_differs_fails_before_downloading(
    s3: Any, bucket: str, store: ObjectStore, mlp_dir: Path, tmp_path: Path
) -> None:
    uri = upload_dir(s3, bucket, "mlp/1", mlp_dir)
    moved: list[int] = []
    with pytest.raises(PackageDigestMismatch):
        fetch_package(
            uri, tmp_path / "models", store=store, progress=moved.append, expected_digest="sha256:" + "1" * 64
        )
    assert moved == []
    assert entries(tmp_path / "models") == []


def test_a_directory_without_its_marker_is_not_complete_and_is_replaced(
    s3: Any, bucket: str, store: ObjectStore, mlp_dir: Path, tmp_path: Path
) -> None:
    uri = upload_dir(s3, bucket, "mlp/1", mlp_dir)
    model_dir = tmp_path / "models"
    digest = validate_package(str(mlp_dir)).digest
    # What a crash between the rename and the marker leaves: the directory, half-written here.
    half = package_dir(model_dir, digest)
    half.mkdir(parents=True)
    (half / MANIFEST_FILE).write_bytes((mlp_dir / MANIFEST_FILE).read_bytes())
    (half / "model.onnx").write_bytes(b"half")
    assert find_fetched(model_dir) is None
    assert find_fetched(model_dir, digest) is None

    fetched = fetch_package(uri, model_dir, store=store)
    assert fetched.path == half
    assert package_files(half) == package_files(mlp_dir)


CHILD = """
import sys, threading
from pathlib import Path
from mlmodel_runtime.package import fetch_package

started = Path(sys.argv[3])

def hold(_n):
    started.touch()
    threading.Event().wait()  # keep the download in flight until the parent kills us

fetch_package(sys.argv[1], Path(sys.argv[2]), progress=hold)
"""


def test_a_killed_fetch_leaves_nothing_complete_and_the_next_fetch_cleans_up(
    s3: Any, s3_env: dict[str, str], bucket: str, store: ObjectStore, mlp_dir: Path, tmp_path: Path
) -> None:
    uri = upload_dir(s3, bucket, "mlp/1", mlp_dir)
    model_dir = tmp_path / "models"
    started = tmp_path / "started"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, uri, str(model_dir), str(started)], env={**os.environ, **s3_env}
    )
    try:
        wait_for(started.exists, 60, "the child fetch to start downloading")
        assert any(name.startswith(".partial-") for name in entries(model_dir))
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert not any(name.endswith(".complete") or name.startswith("sha256-") for name in entries(model_dir))
    assert find_fetched(model_dir) is None

    fetched = fetch_package(uri, model_dir, store=store)
    assert fetched.path is not None
    assert entries(model_dir) == sorted([fetched.path.name, marker_path(model_dir, fetched.digest).name]), (
        "the killed fetch's partial copy and lock are removed"
    )
