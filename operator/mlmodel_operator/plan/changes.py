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


def foreign(live: Mapping[str, Any] | None, owner: Mapping[str, Any]) -> str | None:
    """Why the operator must not take `live` over: it exists under the name the model's object needs but is not
    controlled by the model (a user's own Deployment, another model's canary); None when it is free or ours.

    `owner` is the model's owner reference. An object controlled by an earlier MLModel of the same name is ours
    too: names are unique in a namespace, so that model is gone and the garbage collector has yet to remove it."""
    if live is None:
        return None
    meta = live.get("metadata") or {}
    controller = next((ref for ref in meta.get("ownerReferences") or [] if ref.get("controller")), None)
    if controller is not None and (controller.get("uid") == owner["uid"] or all(
            controller.get(key) == owner[key] for key in ("apiVersion", "kind", "name"))):
        return None
    kind = live.get("kind") or "object"
    held = f"controlled by {controller.get('kind')} {controller.get('name')}" if controller else "not controlled by it"
    return (f"{kind} {meta.get('name')} exists and is {held}, not by this MLModel: the operator does not take it "
            "over; rename the model or delete that object")
