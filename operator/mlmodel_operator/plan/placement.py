"""Placement and format: where the model runs and which runtime serves it (pure)."""

from __future__ import annotations

from mlmodel_operator.config import NodePool, OperatorConfig
from mlmodel_operator.spec import MLModelSpec


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
