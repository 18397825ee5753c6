"""Remembered SHA-256 digests, so that re-validating an unchanged package does not re-hash it.

The key holds everything that changes when a file's content may have changed: where the
package is, the file's path, its ETag (or local change token) and its size. S3 gives a new ETag
to every new upload of a key, so a stale digest is never returned for new content.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import NamedTuple


class CacheKey(NamedTuple):
    location: str
    path: str
    etag: str
    size: int


class DigestCache:
    """A bounded, thread-safe LRU map from CacheKey to a hex SHA-256, counting hits and misses."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[CacheKey, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: CacheKey) -> str | None:
        with self._lock:
            digest = self._entries.get(key)
            if digest is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return digest

    def put(self, key: CacheKey, digest: str) -> None:
        with self._lock:
            self._entries[key] = digest
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
