"""The one module that talks to the S3-compatible object store (boto3).

Every botocore / s3transfer failure leaves this module as one of the contract's reasons:
missing bucket or key -> PackageNotFound, refused credentials -> AccessDenied, unreachable,
timing out or throttling -> StoreUnavailable (temporary). Timeouts are short and retries few,
so an unreachable store fails within seconds: the operator retries with backoff itself.
Messages name the endpoint, bucket and key, never the credentials.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)

from mlmodel_runtime.package.errors import AccessDenied, PackageError, PackageNotFound, StoreUnavailable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

Progress = Callable[[int], None]
"""Called with the number of bytes moved since the last call (from worker threads)."""

CHUNK_SIZE = 1024 * 1024
MIB = 1024 * 1024

_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NotFound", "404", "NoSuchUpload"}
_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AllAccessDisabled",
    "AccountProblem",
    "403",
    "401",
}
_UNAVAILABLE = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "TooManyRequests",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "ServiceUnavailable",
    "InternalError",
    "500",
    "502",
    "503",
    "504",
}


@dataclass(frozen=True)
class ObjectInfo:
    """One object: key, size in bytes and ETag (without quotes)."""

    key: str
    size: int
    etag: str


def redact_endpoint(endpoint: str | None) -> str:
    """The endpoint URL without any `user:password@` part, for messages."""
    if not endpoint:
        return "the default S3 endpoint"
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def classify(exc: BaseException, what: str, endpoint: str) -> PackageError | None:
    """The contract's reason for a botocore / s3transfer failure, or None for anything else.

    `what` names the object (`s3://bucket/key`); s3transfer wraps client errors, so the chain
    (`last_exception`, `__cause__`) is followed to the original.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, PackageError):
            return current
        if isinstance(current, ClientError):
            return _classify_client_error(current, what, endpoint)
        if isinstance(current, NoCredentialsError | PartialCredentialsError):
            return AccessDenied(f"{what}: no usable credentials for {endpoint}")
        if isinstance(current, ConnectionError | HTTPClientError | IncompleteReadError):
            return StoreUnavailable(f"{what}: store at {endpoint} unreachable ({type(current).__name__})")
        if isinstance(current, BotoCoreError):
            return StoreUnavailable(f"{what}: store at {endpoint} failed ({type(current).__name__})")
        nxt = getattr(current, "last_exception", None)
        current = nxt if isinstance(nxt, BaseException) else current.__cause__
    return None


def _classify_client_error(exc: ClientError, what: str, endpoint: str) -> PackageError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in _NOT_FOUND or status == 404:
        thing = "bucket" if code == "NoSuchBucket" else "object"
        return PackageNotFound(f"{what}: {thing} not found ({code or status})")
    if code in _DENIED or status in (401, 403):
        return AccessDenied(f"{what}: access denied by {endpoint} ({code or status})")
    if code in _UNAVAILABLE or status in (429, 500, 502, 503, 504):
        return StoreUnavailable(f"{what}: store at {endpoint} unavailable ({code or status})")
    # Anything else is a request the store will keep refusing: say what it said.
    return PackageNotFound(f"{what}: store refused the request ({code or status})")


class ObjectStore:
    """A boto3 S3 client with short timeouts and error mapping.

    Arguments left as None fall back to boto3's own environment handling (AWS_ENDPOINT_URL,
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, ...).
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str | None = None,
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 30.0,
        max_attempts: int = 2,
        max_concurrency: int = 8,
        multipart_chunksize: int = 16 * MIB,
    ) -> None:
        env = os.environ
        endpoint_url = endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        region = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.endpoint_url = endpoint_url
        self.endpoint = redact_endpoint(endpoint_url)
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            # S3-compatible stores rarely resolve virtual-host bucket names.
            s3={"addressing_style": "path"} if endpoint_url else {},
            signature_version="s3v4",
        )
        session = boto3.session.Session()
        self.client: S3Client = session.client(
            "s3",
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
            config=config,
        )
        self.transfer_config = TransferConfig(
            multipart_threshold=multipart_chunksize,
            multipart_chunksize=multipart_chunksize,
            max_concurrency=max_concurrency,
            use_threads=True,
        )

    @contextmanager
    def _errors(self, bucket: str, key: str = "") -> Iterator[None]:
        """Translate store failures inside the block into PackageError."""
        try:
            yield
        except PackageError:
            raise
        except Exception as exc:
            mapped = classify(exc, f"s3://{bucket}/{key}", self.endpoint)
            if mapped is None:
                raise
            raise mapped from None

    def head(self, bucket: str, key: str) -> ObjectInfo:
        """Size and ETag of one object (PackageNotFound when it is not there)."""
        with self._errors(bucket, key):
            resp = self.client.head_object(Bucket=bucket, Key=key)
        return ObjectInfo(key=key, size=int(resp["ContentLength"]), etag=resp.get("ETag", "").strip('"'))

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.head(bucket, key)
        except PackageNotFound:
            return False
        return True

    def list(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under `prefix` (all pages), directory markers (`.../`) left out."""
        with self._errors(bucket, prefix):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key.endswith("/"):
                        continue
                    yield ObjectInfo(key=key, size=int(obj["Size"]), etag=obj.get("ETag", "").strip('"'))

    def iter_chunks(
        self, bucket: str, key: str, *, chunk_size: int = CHUNK_SIZE, start: int = 0, end: int | None = None
    ) -> Iterator[bytes]:
        """The object's bytes [start, end) in chunks of at most `chunk_size` (bounded memory)."""
        with self._errors(bucket, key):
            kwargs: dict[str, Any] = {}
            if start or end is not None:
                kwargs["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
            body = self.client.get_object(Bucket=bucket, Key=key, **kwargs)["Body"]
            try:
                yield from body.iter_chunks(chunk_size)
            finally:
                body.close()

    def read_bytes(self, bucket: str, key: str, *, limit: int) -> bytes:
        """The whole object, refusing (ValueError) one larger than `limit` bytes."""
        buf = bytearray()
        for chunk in self.iter_chunks(bucket, key):
            buf += chunk
            if len(buf) > limit:
                raise ValueError(f"s3://{bucket}/{key} is larger than {limit} bytes")
        return bytes(buf)

    def open_stream(self, bucket: str, key: str) -> io.BufferedReader:
        """A forward-only binary stream of the object (for tar.gz streaming)."""
        return io.BufferedReader(_ChunkStream(self, bucket, key), buffer_size=CHUNK_SIZE)

    def open_ranged(self, bucket: str, key: str, size: int | None = None) -> io.BufferedReader:
        """A seekable binary stream that reads with ranged GETs (for zip without a download)."""
        if size is None:
            size = self.head(bucket, key).size
        return io.BufferedReader(_RangedReader(self, bucket, key, size), buffer_size=8 * MIB)

    def download(self, bucket: str, key: str, dest: Path, *, progress: Progress | None = None) -> None:
        """Managed download (multipart, concurrent) of one object to `dest`."""
        with self._errors(bucket, key):
            self.client.download_file(bucket, key, str(dest), Callback=progress, Config=self.transfer_config)

    def upload(self, src: Path, bucket: str, key: str, *, progress: Progress | None = None) -> None:
        """Managed upload (multipart above the chunk size, concurrent) of one file."""
        with self._errors(bucket, key):
            self.client.upload_file(str(src), bucket, key, Callback=progress, Config=self.transfer_config)

    def delete(self, bucket: str, keys: Sequence[str]) -> None:
        """Delete `keys` (in batches of 1000, the S3 limit)."""
        for i in range(0, len(keys), 1000):
            batch: list[ObjectIdentifierTypeDef] = [{"Key": k} for k in keys[i : i + 1000]]
            with self._errors(bucket, keys[i]):
                self.client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


class _ChunkStream(io.RawIOBase):
    """A raw, forward-only reader over one GET, with store errors mapped."""

    def __init__(self, store: ObjectStore, bucket: str, key: str) -> None:
        self._chunks = store.iter_chunks(bucket, key)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not self._pending:
            self._pending = next(self._chunks, b"")
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        super().close()


class _RangedReader(io.RawIOBase):
    """A raw, seekable reader that fetches each read with one ranged GET."""

    def __init__(self, store: ObjectStore, bucket: str, key: str, size: int) -> None:
        self._store = store
        self._bucket = bucket
        self._key = key
        self._size = size
        self._pos = 0
        self._lock = threading.Lock()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        with self._lock:
            end = min(self._size, self._pos + len(view))
            if end <= self._pos:
                return 0
            n = 0
            for chunk in self._store.iter_chunks(self._bucket, self._key, start=self._pos, end=end):
                view[n : n + len(chunk)] = chunk
                n += len(chunk)
            self._pos += n
            return n
