"""Whether a rendered object differs from the live one, so that it needs applying (pure)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from mlmodel_operator import names


class Action(enum.Enum):
    CREATE = "Create"
    UPDATE = "Update"
    UNCHANGED = "Unchanged"


def classify(live: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> Action:
    """Create, Update or leave alone, from the applied-hash annotation (no request when Unchanged).

    Beyond the hash, replicas are compared: `kubectl scale deployment` would otherwise stick.
    """
    if live is None:
        return Action.CREATE
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    wanted = desired["metadata"]["annotations"][names.APPLIED_HASH_ANNOTATION]
    if annotations.get(names.APPLIED_HASH_ANNOTATION) != wanted:
        return Action.UPDATE
    desired_replicas = desired.get("spec", {}).get("replicas")
    if desired_replicas is not None and (live.get("spec") or {}).get("replicas") != desired_replicas:
        return Action.UPDATE
    return Action.UNCHANGED

