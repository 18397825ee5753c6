"""Stable hashes of rendered objects (canonical JSON), used to skip applies that change nothing."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def stable_hash(obj: Any) -> str:
    """A short hex hash of `obj` that does not depend on key order."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]
