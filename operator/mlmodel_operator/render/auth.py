"""Request authentication in the rendered objects (pure).

spec.auth APIKeys becomes the runtime's MLMODEL_AUTH settings and the Secret of key hashes mounted read-only
where the runtime reads it again every second (so rotation needs no restart).

spec.auth KubernetesTokens (MLMODEL_AUTH=kubernetes: TokenReview + SubjectAccessReview) runs the pods as a
ServiceAccount of the model's own that may do exactly those two reviews and nothing else, with its token
mounted (the only mode in which it is): `render_token_review_rbac` renders it, a ServiceAccount owned by the
MLModel and a ClusterRoleBinding to the built-in `system:auth-delegator`, whose only rules are `create` on
tokenreviews and subjectaccessreviews. The binding is cluster-scoped, so the MLModel cannot own it: it carries
labels that name the model (and its uid), and the operator deletes it itself (mlmodel_operator.access).
"""

from __future__ import annotations

from typing import Any

from mlmodel_operator import names
from mlmodel_operator.render.hashing import stable_hash
from mlmodel_operator.render.inputs import RenderInput
from mlmodel_operator.render.owner import model_owner_reference
from mlmodel_operator.spec import Auth, MLModel

API_KEYS_DIR = "/etc/mlmodel/api-keys"
API_KEYS_VOLUME = "api-keys"
AUTH_DELEGATOR = "system:auth-delegator"
TOKEN_REVIEWER = "token-reviewer"  # app.kubernetes.io/component of the reviewer's ServiceAccount and binding
NAMESPACE_LABEL = "serving.mlmodel.io/namespace"
UID_LABEL = "serving.mlmodel.io/model-uid"


def _api_keys(inp: RenderInput) -> Auth | None:
    auth = inp.model.spec.auth
    return auth if auth is not None and auth.mode == "APIKeys" else None


def uses_tokens(model: MLModel) -> bool:
    return model.spec.auth is not None and model.spec.auth.mode == "KubernetesTokens"


def auth_env(inp: RenderInput) -> list[dict[str, Any]]:
    auth = inp.model.spec.auth
    if auth is None:
        return []
    if auth.mode == "KubernetesTokens":
        return [{"name": "MLMODEL_AUTH", "value": "kubernetes"},
                {"name": "MLMODEL_AUTH_NAMESPACE", "value": inp.model.metadata.namespace},
                {"name": "MLMODEL_AUTH_VERB", "value": auth.verb}]
    return [{"name": "MLMODEL_AUTH", "value": "apikeys"}, {"name": "MLMODEL_AUTH_API_KEYS_DIR", "value": API_KEYS_DIR}]


def auth_volumes(inp: RenderInput) -> list[dict[str, Any]]:
    auth = _api_keys(inp)
    if auth is None:
        return []
    # 0440 with the pod's fsGroup: readable by the runtime's group, by nobody else
    return [{"name": API_KEYS_VOLUME, "secret": {"secretName": auth.api_keys_secret, "defaultMode": 0o440}}]


def auth_volume_mounts(inp: RenderInput) -> list[dict[str, Any]]:
    if _api_keys(inp) is None:
        return []
    return [{"name": API_KEYS_VOLUME, "mountPath": API_KEYS_DIR, "readOnly": True}]


def auth_pod_spec(inp: RenderInput) -> dict[str, Any]:
    """KubernetesTokens: the pod runs as the model's token reviewer, with its (projected, rotated) token mounted;
    otherwise nothing (no token in the pod)."""
    if not uses_tokens(inp.model):
        return {}
    account, _ = token_reviewer_name(inp.model.metadata.namespace, inp.model.metadata.name)
    # The deprecated `serviceAccount` too: the API server copies one into the other, so a server-side apply that
    # later leaves out only serviceAccountName (auth turned off) would find it restored from serviceAccount,
    # which no field manager owned; owning both, the apply removes both.
    return {"serviceAccountName": account, "serviceAccount": account, "automountServiceAccountToken": True}


def token_reviewer_name(namespace: str, model: str) -> tuple[str, str]:
    """(ServiceAccount, ClusterRoleBinding) names of a model's token reviewer."""
    return f"{model}-{TOKEN_REVIEWER}", f"mlmodel:{namespace}:{model}:{TOKEN_REVIEWER}"


def reviewer_labels(namespace: str, model: str) -> dict[str, str]:
    """What selects a model's reviewer objects, whichever incarnation of the model made them."""
    return {**names.object_labels(model), names.LABEL_COMPONENT: TOKEN_REVIEWER, NAMESPACE_LABEL: namespace}


def reviewer_selector(namespace: str | None = None, model: str | None = None) -> str:
    """A label selector of reviewer objects: every one the operator made, or those of a namespace / model."""
    labels = {names.LABEL_MANAGED_BY: names.MANAGED_BY, names.LABEL_COMPONENT: TOKEN_REVIEWER}
    if namespace is not None:
        labels[NAMESPACE_LABEL] = namespace
    if model is not None:
        labels[names.LABEL_INSTANCE] = model
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def render_token_review_rbac(model: MLModel) -> list[dict[str, Any]]:
    """The ServiceAccount a model's runtime checks Kubernetes tokens as, and its only permission."""
    namespace, name = model.metadata.namespace, model.metadata.name
    account, binding = token_reviewer_name(namespace, name)
    labels = {**reviewer_labels(namespace, name), UID_LABEL: model.metadata.uid}
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": account, "namespace": namespace, "labels": labels, "annotations": {},
                         "ownerReferences": [model_owner_reference(model)]},
            "automountServiceAccountToken": False,  # the pod asks for the token itself
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": binding, "labels": labels, "annotations": {}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": AUTH_DELEGATOR},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
    ]
    for obj in objects:
        obj["metadata"]["annotations"][names.APPLIED_HASH_ANNOTATION] = stable_hash(obj)
    return objects
