"""The local object store is a real S3: a 50 MB object round-trips (multipart), and a wrong secret is refused."""

from __future__ import annotations

import hashlib
import io
import os
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

pytestmark = pytest.mark.objectstore


def test_50mb_object_round_trips(s3: Any, bucket: str) -> None:
    data = os.urandom(50 * 1024 * 1024)
    multipart = TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024)
    s3.upload_fileobj(io.BytesIO(data), bucket, "big.bin", Config=multipart)

    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-7"), "a 50 MB upload in 8 MB parts is a 7-part multipart object"
    out = io.BytesIO()
    s3.download_fileobj(bucket, "big.bin", out, Config=multipart)
    assert hashlib.sha256(out.getvalue()).digest() == hashlib.sha256(data).digest()


@pytest.mark.parametrize(
    ("access_key", "secret_key", "code"),
    [
        (None, "wrong-secret", "SignatureDoesNotMatch"),
        ("AKIAUNKNOWN", "wrong-secret", "InvalidAccessKeyId"),
    ],
)
def test_wrong_credentials_are_refused(
    s3_env: dict[str, str], bucket: str, access_key: str | None, secret_key: str, code: str
) -> None:
    client = boto3.client(
        "s3",
        endpoint_url=s3_env["AWS_ENDPOINT_URL"],
        aws_access_key_id=access_key or s3_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret_key,
        region_name=s3_env["AWS_REGION"],
    )
    with pytest.raises(ClientError) as err:
        client.put_object(Bucket=bucket, Key="x", Body=b"x")
    assert err.value.response["Error"]["Code"] == code
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
