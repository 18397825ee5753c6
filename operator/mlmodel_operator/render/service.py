"""The runtime Service: a pure function of RenderInput."""

from __future__ import annotations

from typing import Any

from mlmodel_operator import names
from mlmodel_operator.render.deployment import owner_reference
from mlmodel_operator.render.hashing import stable_hash
from mlmodel_operator.render.inputs import RenderInput


def object_metadata(inp: RenderInput) -> dict[str, Any]:
    """Name, namespace, labels and owner of a namespaced object rendered for the model (annotations to fill)."""
    model = inp.model
    name = model.metadata.name
    return {
        "name": name,
        "namespace": model.metadata.namespace,
        "labels": names.object_labels(name),
        "annotations": {},
        "ownerReferences": [owner_reference(inp)],
    }


def render_service(inp: RenderInput) -> dict[str, Any]:
    """A ClusterIP Service in front of the runtime pods: the V2 REST port, the metrics port and the V2 gRPC port."""
    model = inp.model
    name = model.metadata.name
    service: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_metadata(inp),
        "spec": {
            "type": "ClusterIP",
            "selector": names.selector_labels(name),
            "ports": [
                {"name": "http", "port": names.HTTP_PORT, "targetPort": "http", "protocol": "TCP",
                 "appProtocol": "http"},
                {"name": "metrics", "port": names.METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"},
                # gRPC is HTTP/2 in clear text: Kubernetes' standard appProtocol for it (KEP-3726)
                {"name": "grpc", "port": names.GRPC_PORT, "targetPort": "grpc", "protocol": "TCP",
                 "appProtocol": "kubernetes.io/h2c"},
            ],
        },
    }
    service["metadata"]["annotations"][names.APPLIED_HASH_ANNOTATION] = stable_hash(service)
    return service
