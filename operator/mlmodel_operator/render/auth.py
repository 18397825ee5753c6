"""Request authentication in the rendered objects (pure).

spec.auth (APIKeys) becomes the runtime's MLMODEL_AUTH settings and the Secret of key hashes mounted
read-only where the runtime reads it again every second (so rotation needs no restart).

The runtime's other mode, Kubernetes tokens (TokenReview + SubjectAccessReview, MLMODEL_AUTH=kubernetes),
needs a ServiceAccount per model that may do exactly those two reviews and nothing else:
`render_token_review_rbac` renders it (a ServiceAccount and a ClusterRoleBinding to the built-in
`system:auth-delegator`, whose only rules are `create` on tokenreviews and subjectaccessreviews). It is
not in spec.auth yet: the reconcile pass does not apply these objects (nor delete the cluster-scoped
binding, which cannot be owned by a namespaced MLModel).
"""

from __future__ import annotations

from typing import Any

from mlmodel_operator import names
from mlmodel_operator.render.inputs import RenderInput

API_KEYS_DIR = "/etc/mlmodel/api-keys"
API_KEYS_VOLUME = "api-keys"
AUTH_DELEGATOR = "system:auth-delegator"


def auth_env(inp: RenderInput) -> list[dict[str, Any]]:
    auth = inp.model.spec.auth
    if auth is None:
        return []
    return [{"name": "MLMODEL_AUTH", "value": "apikeys"}, {"name": "MLMODEL_AUTH_API_KEYS_DIR", "value": API_KEYS_DIR}]


def auth_volumes(inp: RenderInput) -> list[dict[str, Any]]:
    auth = inp.model.spec.auth
    if auth is None:
        return []
    # 0440 with the pod's fsGroup: readable by the runtime's group, by nobody else
    return [{"name": API_KEYS_VOLUME, "secret": {"secretName": auth.api_keys_secret, "defaultMode": 0o440}}]


def auth_volume_mounts(inp: RenderInput) -> list[dict[str, Any]]:
    if inp.model.spec.auth is None:
        return []
    return [{"name": API_KEYS_VOLUME, "mountPath": API_KEYS_DIR, "readOnly": True}]


def token_reviewer_name(namespace: str, model: str) -> tuple[str, str]:
    """(ServiceAccount, ClusterRoleBinding) names of a model's token reviewer."""
    return f"{model}-token-reviewer", f"mlmodel:{namespace}:{model}:token-reviewer"


def render_token_review_rbac(namespace: str, model: str) -> list[dict[str, Any]]:
    """The ServiceAccount a model's runtime would check Kubernetes tokens as, and its only permission."""
    account, binding = token_reviewer_name(namespace, model)
    labels = names.object_labels(model)
    return [
        {
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": account, "namespace": namespace, "labels": labels},
            "automountServiceAccountToken": False,  # the pod asks for the token itself
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": binding, "labels": {**labels, "serving.mlmodel.io/namespace": namespace}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": AUTH_DELEGATOR},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
    ]
