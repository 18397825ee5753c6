"""A canary's own objects beside the candidate's Deployment (pure): the candidate's Service, which the stable
revision's runtimes send shadow copies to, and the shadow ConfigMap those runtimes follow (names.SHADOW_DIR)."""

from __future__ import annotations

import json
from typing import Any

from mlmodel_operator import names
from mlmodel_operator.config import GatewayRef
from mlmodel_operator.render.deployment import owner_reference
from mlmodel_operator.render.hashing import stable_hash
from mlmodel_operator.render.inputs import RenderInput
from mlmodel_operator.render.owner import model_owner_reference
from mlmodel_operator.spec import CanaryShadow, MLModel


def _metadata(inp: RenderInput, name: str) -> dict[str, Any]:
    model = inp.model.metadata.name
    return {
        "name": name,
        "namespace": inp.model.metadata.namespace,
        "labels": {**names.object_labels(model), **names.canary_selector_labels(model)},
        "annotations": {},
        "ownerReferences": [owner_reference(inp)],
    }


def _hashed(obj: dict[str, Any]) -> dict[str, Any]:
    obj["metadata"]["annotations"][names.APPLIED_HASH_ANNOTATION] = stable_hash(obj)
    return obj


def render_canary_service(inp: RenderInput) -> dict[str, Any]:
    """The candidate's pods alone, on the V2 REST port (names.canary_name)."""
    model = inp.model.metadata.name
    return _hashed({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(inp, names.canary_name(model)),
        "spec": {
            "type": "ClusterIP",
            "selector": names.canary_selector_labels(model),
            "ports": [{"name": "http", "port": names.HTTP_PORT, "targetPort": "http", "protocol": "TCP",
                       "appProtocol": "http"}],
        },
    })


def shadow_settings(shadow: CanaryShadow, candidate: int, address: str) -> dict[str, Any]:
    """What the stable runtimes read (mlmodel_runtime.server.shadow_file): where to copy (the candidate's Service,
    by its ClusterIP: no cluster DNS needed), how much, how close."""
    return {"url": f"http://{address}:{names.HTTP_PORT}", "candidate": str(candidate), "percent": shadow.percent,
            "atol": shadow.absolute_tolerance, "rtol": shadow.relative_tolerance}


def render_shadow_config(inp: RenderInput, shadow: CanaryShadow, candidate: int, address: str) -> dict[str, Any]:
    """The ConfigMap every runtime pod of the model mounts (optional) at names.SHADOW_DIR."""
    settings = json.dumps(shadow_settings(shadow, candidate, address), sort_keys=True)
    return _hashed({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(inp, names.shadow_config_name(inp.model.metadata.name)),
        "data": {names.SHADOW_KEY: settings},
    })


ROUTE_API = ("gateway.networking.k8s.io", "v1", "httproutes")


def render_http_route(mlmodel: MLModel, gateway: GatewayRef, candidate_weight: int | None) -> dict[str, Any]:
    """The model's HTTPRoute on the configured Gateway: /v2/models/<model> to the model's Service, and during a
    canary `candidate_weight` percent of it to the candidate's Service (names.canary_name)."""
    model = mlmodel.metadata.name
    parent: dict[str, Any] = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway.name}
    if gateway.namespace:
        parent["namespace"] = gateway.namespace
    if gateway.section_name:
        parent["sectionName"] = gateway.section_name
    stable = {"group": "", "kind": "Service", "name": model, "port": names.HTTP_PORT}
    backends = [{**stable, "weight": 100}]
    if candidate_weight is not None:
        candidate = {"group": "", "kind": "Service", "name": names.canary_name(model), "port": names.HTTP_PORT}
        backends = [{**stable, "weight": 100 - candidate_weight}, {**candidate, "weight": candidate_weight}]
    metadata = {"name": model, "namespace": mlmodel.metadata.namespace, "labels": names.object_labels(model),
                "annotations": {}, "ownerReferences": [model_owner_reference(mlmodel)]}
    return _hashed({
        "apiVersion": f"{ROUTE_API[0]}/{ROUTE_API[1]}",
        "kind": "HTTPRoute",
        "metadata": metadata,
        "spec": {
            "parentRefs": [parent],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": f"/v2/models/{model}"}}],
                "backendRefs": backends,
            }],
        },
    })
