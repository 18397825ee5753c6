"""Decisions before acting, as pure functions: placement, format, revision number, what to apply."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from mlmodel_operator import names
from mlmodel_operator.config import NodePool, OperatorConfig
from mlmodel_operator.spec import MLModelSpec, MLModelStatus


class Refused(Exception):
    """The spec cannot be served as it is (a Stalled reason and a message naming the field)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def resolve_pool(spec: MLModelSpec, config: OperatorConfig) -> NodePool:
    """The node pool the model runs on; Refused when it does not exist or has no GPUs to give."""
    pool = config.pool(spec.node_pool)
    known = ", ".join(p.name for p in config.node_pools) or "none configured"
    if pool is None:
        if spec.node_pool:
            raise Refused(
                "UnknownNodePool", f"spec.nodePool {spec.node_pool!r} is not a node pool of this operator ({known})"
            )
        raise Refused("UnknownNodePool", f"spec.nodePool is unset and no node pool is the default; set one of: {known}")
    if spec.resources.gpu > 0 and not pool.gpu_resource_name:
        raise Refused(
            "NoGPUInPool",
            f"spec.resources.gpu is {spec.resources.gpu} but node pool {pool.name!r} has no GPUs",
        )
    return pool


def resolve_format(spec: MLModelSpec, package_format: str, config: OperatorConfig) -> str:
    """The format to serve: the package's, which spec.format (when set) must match."""
    if spec.format is not None and spec.format != package_format:
        raise Refused(
            "FormatMismatch",
            f"spec.format is {spec.format!r} but the package's metadata.json says {package_format!r}",
        )
    if package_format not in config.effective_formats:
        raise Refused(
            "FormatNotAllowed",
            f"format {package_format!r} is not allowed by the operator's configuration "
            f"(allowed: {', '.join(sorted(config.effective_formats))})",
        )
    if package_format not in config.runtime_images:
        raise Refused("FormatUnsupported", f"the operator has no runtime image for format {package_format!r}")
    return package_format


def _template_meta(live: Mapping[str, Any] | None) -> tuple[str | None, int | None]:
    template = ((live or {}).get("spec") or {}).get("template") or {}
    meta = template.get("metadata") or {}
    fingerprint = (meta.get("annotations") or {}).get(names.FINGERPRINT_ANNOTATION)
    revision = (meta.get("labels") or {}).get(names.REVISION_LABEL)
    return fingerprint, int(revision) if isinstance(revision, str) and revision.isdigit() else None


def decide_revision(fingerprint: str, live: Mapping[str, Any] | None, status: MLModelStatus) -> int:
    """The revision number of the desired pod template.

    The same template as the live Deployment's keeps its number; any other template gets the next
    number after every one seen (live or in status), so numbers never repeat. The state lives in
    the Deployment and the status, never only in memory.
    """
    live_fingerprint, live_revision = _template_meta(live)
    if live_fingerprint == fingerprint and live_revision is not None:
        return live_revision
    return max(live_revision or 0, status.desired_revision or 0, status.revision or 0) + 1


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


def retry_delay(attempt: int, first: float, maximum: float) -> float:
    """Exponential backoff: `first` seconds for attempt 0, doubled each time, capped at `maximum`."""
    return float(min(maximum, first * 2 ** min(attempt, 30)))
