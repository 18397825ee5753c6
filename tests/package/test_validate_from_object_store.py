"""validate_package against the real object store: a package under a prefix, as a zip and as a
tar.gz validates with one digest; a corrupted object names file, expected and found digests;
a missing manifest, prefix or bucket is PackageNotFound; a wrong secret or unknown key is
AccessDenied without leaking either; an endpoint with nothing listening is StoreUnavailable
within seconds; the digest cache makes a second validation hash nothing and notices a
re-uploaded file."""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from mlmodel_runtime.package import (
    AccessDenied,
    DigestCache,
    DigestMismatch,
    ObjectStore,
    PackageNotFound,
    StoreUnavailable,
    validate_package,
)
from mlmodel_runtime.package.models import MANIFEST_FILE

from tests.support.packages import archive_package, corrupt_file, upload_dir, upload_file

pytestmark = pytest.mark.objectstore


def test_prefix_zip_and_tar_gz_packages_validate_with_one_digest(
    s3: Any, bucket: str, store: ObjectStore, mlp_dir: Path
) -> None:
    local = validate_package(str(mlp_dir))
    prefix_uri = upload_dir(s3, bucket, "mlp/1", mlp_dir)
    zip_uri = upload_file(s3, bucket, "archives/mlp-1.zip", archive_package(mlp_dir, "zip"))
    tgz_uri = upload_file(s3, bucket, "archives/mlp-1.tar.gz", archive_package(mlp_dir, "tar.gz"))

    for uri in (prefix_uri, zip_uri, tgz_uri):
        remote = validate_package(uri, store=store)
        assert remote.digest == local.digest, uri
        assert remote.uri == uri
        assert remote.metadata.name == "mlp"
        assert remote.total_size == local.total_size


def test_prefix_without_trailing_slash_is_the_same_package(
    s3: Any, bucket: str, store: ObjectStore, mlp_dir: Path
) -> None:
    upload_dir(s3, bucket, "mlp/1", mlp_dir)
    s3.put_object(Bucket=bucket, Key="mlp/10/README.md", Body=b"another package")
    assert validate_package(f"s3://{bucket}/mlp/1", store=store).digest == validate_package(str(mlp_dir)).digest


def test_a_corrupted_object_names_file_and_both_digests(
    s3: Any, bucket: str, store: ObjectStore, mlp_dir: Path
) -> None:
    expected = hashlib.sha256((mlp_dir / "model.onnx").read_bytes()).hexdigest()
    corrupt_file(mlp_dir, "model.onnx")
    found = hashlib.sha256((mlp_dir / "model.onnx").read_bytes()).hexdigest()
    uri = upload_dir(s3, bucket, "mlp/1", mlp_dir)
    with pytest.raises(DigestMismatch) as err:
        validate_package(uri, store=store)
    assert err.value.message == f"model.onnx: sha256 expected {expected} found {found}"


def test_a_missing_manifest_is_package_not_found(s3: Any, bucket: str, store: ObjectStore, mlp_dir: Path) -> None:
    (mlp_dir / MANIFEST_FILE).unlink()
    uri = upload_dir(s3, bucket, "mlp/1", mlp_dir)
    with pytest.raises(PackageNotFound, match=r"deployment_manifest\.json not found"):
        validate_package(uri, store=store)


@pytest.mark.parametrize(
    "uri", ["s3://{bucket}/nothing/here/", "s3://{bucket}/nothing.zip", "s3://no-such-bucket-x1/a/"]
)
def test_missing_prefix_object_or_bucket_is_package_not_found(bucket: str, store: ObjectStore, uri: str) -> None:
    with pytest.raises(PackageNotFound) as err:
        validate_package(uri.format(bucket=bucket), store=store)
    assert err.value.exit_code == 10


@pytest.mark.parametrize("wrong", ["secret", "key"])
def test_wrong_credentials_are_access_denied_and_not_leaked(
    s3: Any, s3_env: dict[str, str], bucket: str, mlp_dir: Path, wrong: str
) -> None:
    uri = upload_dir(s3, bucket, "mlp/1", mlp_dir)
    access_key = "AKIAUNKNOWNKEY0000" if wrong == "key" else s3_env["AWS_ACCESS_KEY_ID"]
    secret = "not-the-secret-4f1c9a"
    bad = ObjectStore(s3_env["AWS_ENDPOINT_URL"], access_key, secret, s3_env["AWS_REGION"])
    with pytest.raises(AccessDenied) as err:
        validate_package(uri, store=bad)
    assert err.value.exit_code == 11
    assert secret not in err.value.message
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in err.value.message
    assert access_key not in err.value.message


def test_nothing_listening_is_store_unavailable_quickly() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Bound then closed: nothing listens on the port now.
    dead = ObjectStore(f"http://127.0.0.1:{port}", "key", "secret", "us-east-1")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as err:
        validate_package("s3://models/fraud/7/", store=dead)
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"an unreachable store must fail fast, took {elapsed:.1f}s"
    assert err.value.temporary
    assert err.value.exit_code == 16
    assert f"127.0.0.1:{port}" in err.value.message


@pytest.mark.parametrize("form", ["prefix", "zip"])
def test_cache_makes_a_second_validation_hash_nothing(
    s3: Any, bucket: str, store: ObjectStore, mlp_dir: Path, form: str
) -> None:
    if form == "prefix":
        uri = upload_dir(s3, bucket, "mlp/1", mlp_dir)
    else:
        uri = upload_file(s3, bucket, "mlp-1.zip", archive_package(mlp_dir, "zip"))
    hashed = 3  # model.onnx, README.md, requirements.txt (metadata.json is always read and checked)
    cache = DigestCache()
    first = validate_package(uri, store=store, cache=cache)
    assert (cache.hits, cache.misses) == (0, hashed)
    second = validate_package(uri, store=store, cache=cache)
    assert (cache.hits, cache.misses) == (hashed, hashed)
    assert second.digest == first.digest


def test_cache_notices_a_reuploaded_object(s3: Any, bucket: str, store: ObjectStore, mlp_dir: Path) -> None:
    uri = upload_dir(s3, bucket, "mlp/1", mlp_dir)
    cache = DigestCache()
    validate_package(uri, store=store, cache=cache)
    corrupt_file(mlp_dir, "model.onnx")  # same size: only the ETag tells
    s3.upload_file(str(mlp_dir / "model.onnx"), bucket, "mlp/1/model.onnx")
    with pytest.raises(DigestMismatch, match=r"^model\.onnx: "):
        validate_package(uri, store=store, cache=cache)
