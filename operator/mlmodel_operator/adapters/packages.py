"""Package validation against the object store, through mlmodel_runtime.package (the one S3 adapter).

Stores are cached per endpoint, region and credentials, and file digests per ETag. A package whose
manifest digest is one the model already served from the same URI (its history) is not hashed at all:
the listing, the manifest and metadata.json are checked, and the runtime verifies every file when it
downloads them anyway. So a resync, a revert to an earlier package or an operator restart hashes nothing.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from mlmodel_runtime.package import (
    DigestCache,
    ModelFormat,
    ObjectStore,
    open_source,
)
from mlmodel_runtime.package.models import EXAMPLES_FILE, Manifest
from mlmodel_runtime.package.verify import check_head, validate_source

from mlmodel_operator.config import OperatorConfig
from mlmodel_operator.faults import FaultInjector
from mlmodel_operator.gates import training_metrics
from mlmodel_operator.spec import Source


@dataclass(frozen=True)
class Credentials:
    """An access key pair read from the model's Secret (the secret never shows in repr)."""

    access_key: str
    secret_key: str = field(repr=False)


@dataclass(frozen=True)
class CheckedPackage:
    """A package that passed validation: what status and rendering need."""

    digest: str
    size: int
    format: str
    hashed: bool  # False: recognized by its manifest digest, no file hashed
    metrics: Mapping[str, object] = field(default_factory=dict)  # metadata.json training.metrics (quality gates)
    examples: bool = False  # the manifest lists examples.json (the runtime runs it before it serves)


class PackageValidator:
    """validate_package with the operator's format policy, a digest cache and reused store clients."""

    def __init__(
        self,
        config: OperatorConfig,
        cache: DigestCache | None = None,
        max_stores: int = 64,
        faults: FaultInjector | None = None,
    ) -> None:
        self.config = config
        self.faults = faults or FaultInjector()
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

    def check(
        self, source: Source, credentials: Credentials | None, known_digests: Collection[str] = ()
    ) -> CheckedPackage:
        """Validate, skipping the file hashes when the manifest's digest is in `known_digests`.

        Raises the contract's PackageError (`.reason`, `.temporary`) or InvalidUri.
        """
        reported = False

        def progress(_: int) -> None:
            nonlocal reported
            if not reported:
                reported = True
                self.faults.reached("validating", key=source.uri)

        with open_source(source.uri, store=self._store(source, credentials)) as opened:
            head = check_head(opened, allow_pickle=self.config.allow_pickle, allowed_formats=self.allowed)
            if head.digest in known_digests:
                size = head.manifest.total_size + len(head.manifest_bytes)
                return CheckedPackage(head.digest, size, head.format.value, hashed=False,
                                      metrics=training_metrics(head.metadata.training),
                                      examples=_has_examples(head.manifest))
            validated = validate_source(
                opened, allow_pickle=self.config.allow_pickle, allowed_formats=self.allowed, cache=self.cache,
                progress=progress,
            )
        return CheckedPackage(validated.digest, validated.total_size, validated.format.value, hashed=True,
                              metrics=training_metrics(validated.metadata.training),
                              examples=_has_examples(validated.manifest))


def _has_examples(manifest: Manifest) -> bool:
    return any(e.path == EXAMPLES_FILE for e in manifest.files)
