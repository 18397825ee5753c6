"""How store failures become the contract's reasons (pure: botocore exceptions built by hand):
missing bucket/key -> PackageNotFound, refused credentials -> AccessDenied, throttling, 5xx and
connection failures -> StoreUnavailable (temporary), also through s3transfer's wrappers; the
endpoint is named without any userinfo it may carry; URIs parse as the contract says."""

from __future__ import annotations

from typing import Any, cast

import pytest
from boto3.exceptions import RetriesExceededError, S3UploadFailedError
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from mlmodel_runtime.package import AccessDenied, PackageNotFound, StoreUnavailable
from mlmodel_runtime.package.archive import ArchiveKind
from mlmodel_runtime.package.source import InvalidUri, parse_uri
from mlmodel_runtime.package.store import classify, redact_endpoint

WHAT = "s3://models/fraud/7/model.onnx"


def client_error(code: str, status: int) -> ClientError:
    response = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(cast(Any, response), "Op")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (client_error("NoSuchKey", 404), PackageNotFound),
        (client_error("NoSuchBucket", 404), PackageNotFound),
        (client_error("404", 404), PackageNotFound),
        (client_error("AccessDenied", 403), AccessDenied),
        (client_error("InvalidAccessKeyId", 403), AccessDenied),
        (client_error("SignatureDoesNotMatch", 403), AccessDenied),
        (client_error("403", 403), AccessDenied),
        (client_error("SlowDown", 503), StoreUnavailable),
        (client_error("ServiceUnavailable", 503), StoreUnavailable),
        (client_error("Throttling", 400), StoreUnavailable),
        (client_error("InternalError", 500), StoreUnavailable),
        (client_error("", 502), StoreUnavailable),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), StoreUnavailable),
        (ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), StoreUnavailable),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), StoreUnavailable),
        (NoCredentialsError(), AccessDenied),
        (RetriesExceededError(cast(Any, EndpointConnectionError(endpoint_url="http://x"))), StoreUnavailable),
    ],
)
def test_store_failures_map_to_contract_reasons(exc: Exception, expected: type[Exception]) -> None:
    mapped = classify(exc, WHAT, "http://store:8333")
    assert type(mapped) is expected
    assert mapped is not None
    assert WHAT in mapped.message
    assert mapped.temporary is (expected is StoreUnavailable)


def test_upload_failures_are_followed_to_their_cause() -> None:
    outer = S3UploadFailedError("Failed to upload")
    outer.__cause__ = client_error("AccessDenied", 403)  # what boto3's `raise ... from e` records
    assert type(classify(outer, WHAT, "e")) is AccessDenied


def test_other_exceptions_are_not_store_failures() -> None:
    assert classify(ValueError("x"), WHAT, "e") is None


def test_endpoint_is_shown_without_credentials() -> None:
    assert redact_endpoint("http://user:s3cr3t@store.example:8333/path") == "http://store.example:8333/path"
    assert redact_endpoint(None) == "the default S3 endpoint"


@pytest.mark.parametrize(
    ("uri", "bucket", "key", "archive"),
    [
        ("s3://models/fraud/7/", "models", "fraud/7/", None),
        ("s3://models/fraud/7", "models", "fraud/7/", None),
        ("s3://models", "models", "", None),
        ("s3://models/fraud-7.zip", "models", "fraud-7.zip", ArchiveKind.ZIP),
        ("s3://models/a/fraud.tar.gz", "models", "a/fraud.tar.gz", ArchiveKind.TAR_GZ),
        ("s3://models/fraud.tgz", "models", "fraud.tgz", ArchiveKind.TAR_GZ),
    ],
)
def test_s3_uris(uri: str, bucket: str, key: str, archive: ArchiveKind | None) -> None:
    parsed = parse_uri(uri)
    assert (parsed.scheme, parsed.bucket, parsed.key, parsed.archive) == ("s3", bucket, key, archive)


def test_local_uris() -> None:
    assert parse_uri("/srv/models/fraud").key == "/srv/models/fraud"
    assert parse_uri("file:///srv/models/fraud.zip").archive is ArchiveKind.ZIP
    assert parse_uri("file:///srv/my%20models").key == "/srv/my models"


@pytest.mark.parametrize("uri", ["", "http://host/x", "s3://", "s3://Bad_Bucket/x", "s3://ok-bucket/x?versionId=1"])
def test_unusable_uris_are_usage_errors(uri: str) -> None:
    with pytest.raises(InvalidUri):
        parse_uri(uri)
