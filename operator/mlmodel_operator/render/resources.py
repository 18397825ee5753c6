"""Container resources: the operator's defaults merged with the model's, plus the pool's GPUs."""

from __future__ import annotations

from decimal import Decimal

from kubernetes.utils import parse_quantity

from mlmodel_operator.render.inputs import RenderInput


def _quantity(value: str) -> Decimal:
    result: Decimal = parse_quantity(value)  # type: ignore[no-untyped-call]
    return result


def container_resources(inp: RenderInput) -> dict[str, dict[str, str]]:
    """requests/limits: defaults overridden key by key by the spec; GPUs as a limit.

    A default limit below the model's own request for the same resource is raised to that
    request: a model that asks for 8Gi must not be refused because the default limit is 2Gi.
    """
    spec = inp.model.spec.resources
    defaults = inp.config.default_resources
    requests = {**defaults.requests, **(spec.requests or {})}
    limits = {**defaults.limits, **(spec.limits or {})}
    for key, limit in list(limits.items()):
        own_limit = spec.limits is not None and key in spec.limits
        if not own_limit and key in requests and _quantity(limit) < _quantity(requests[key]):
            limits[key] = requests[key]
    if spec.gpu > 0 and inp.pool.gpu_resource_name:
        limits[inp.pool.gpu_resource_name] = str(spec.gpu)
    out: dict[str, dict[str, str]] = {}
    if requests:
        out["requests"] = dict(sorted(requests.items()))
    if limits:
        out["limits"] = dict(sorted(limits.items()))
    return out
