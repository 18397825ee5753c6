"""Package validation against the object store, through mlmodel_runtime.package (the one S3 adapter).

Stores are cached per endpoint, region and credentials, and file digests per ETag, so a resync of an
unchanged package lists and reads two small files but hashes nothing.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from mlmodel_runtime.package import DigestCache, ModelFormat, ObjectStore, ValidatedPackage, validate_package

from mlmodel_operator.config import OperatorConfig
from mlmodel_operator.spec import Source


@dataclass(frozen=True)
class Credentials:
    """An access key pair read from the model's Secret (the secret never shows in repr)."""

    access_key: str
    secret_key: str = field(repr=False)


class PackageValidator:
    """validate_package with the operator's format policy, a digest cache and reused store clients."""

    def __init__(self, config: OperatorConfig, cache: DigestCache | None = None, max_stores: int = 64) -> None:
        self.config = config
        self.cache = cache or DigestCache()
        self.allowed = frozenset(ModelFormat(f) for f in config.effective_formats)
        self._stores: OrderedDict[tuple[str, ...], ObjectStore] = OrderedDict()
        self._max_stores = max_stores
        self._lock = threading.Lock()

    def _store(self, source: Source, credentials: Credentials | None) -> ObjectStore:
        defaults = self.config.object_store
        endpoint = source.endpoint or defaults.endpoint
        region = source.region or defaults.region
        secret_hash = hashlib.sha256(credentials.secret_key.encode()).hexdigest() if credentials else ""
        key = (endpoint or "", region, credentials.access_key if credentials else "", secret_hash)
        with self._lock:
            store = self._stores.get(key)
            if store is not None:
                self._stores.move_to_end(key)
                return store
        store = ObjectStore(
            endpoint_url=endpoint,
            access_key=credentials.access_key if credentials else None,
            secret_key=credentials.secret_key if credentials else None,
            region=region,
            connect_timeout=defaults.connect_timeout_seconds,
            read_timeout=defaults.read_timeout_seconds,
        )
        with self._lock:
            self._stores[key] = store
            while len(self._stores) > self._max_stores:
                self._stores.popitem(last=False)
        return store

    def validate(self, source: Source, credentials: Credentials | None) -> ValidatedPackage:
        """Raises the contract's PackageError (`.reason`, `.temporary`) or InvalidUri."""
        return validate_package(
            source.uri,
            allow_pickle=self.config.allow_pickle,
            allowed_formats=self.allowed,
            cache=self.cache,
            store=self._store(source, credentials),
        )
