"""spec.auth KubernetesTokens on the real node, with the operator installed by the chart: the operator makes
the model's reviewer ServiceAccount and binding, the pod runs as it with its projected token, and the runtime in
the pod reviews callers' tokens against the API server through the in-cluster `kubernetes` Service: a
ServiceAccount with `get` on the MLModel is answered, another is 403, no token or garbage 401. Deleting the model
leaves no ClusterRoleBinding."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import InClusterOperator
from tests.e2e.models import INFER_BODY, E2EPackages
from tests.e2e.realpods import model_manifest, pods, ready
from tests.operator.cluster import wait_condition
from tests.support.kube import Kubectl
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore, pytest.mark.slow]

ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: use-t}
rules:
- {apiGroups: [serving.mlmodel.io], resources: [mlmodels], resourceNames: [t], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: use-t}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: use-t}
subjects: [{kind: ServiceAccount, name: allowed}]
"""


def _token(kubectl: Kubectl, namespace: str, account: str) -> str:
    kubectl.run("create", "serviceaccount", account, "-n", namespace)
    token: str = kubectl.run("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    return token


def test_runtime_in_the_pod_reviews_tokens_as_the_models_reviewer(
    operator: InClusterOperator, model_ns: str, packages: E2EPackages, kubectl: Kubectl,
) -> None:
    kubectl.apply(model_manifest("t", packages.good("t/1", seed=1), replicas=1,
                                 auth={"mode": "KubernetesTokens"}), model_ns)
    wait_condition(kubectl, model_ns, "t", "Ready", timeout=300)
    pod = pods(kubectl, model_ns)[0]
    assert ready(pod)
    assert pod["spec"]["serviceAccountName"] == "t-token-reviewer"
    kubectl.apply(ROLE, model_ns)
    allowed, other = _token(kubectl, model_ns, "allowed"), _token(kubectl, model_ns, "other")
    url = f"http://{pod['status']['podIP']}:8080/v2/models/t/infer"

    def infer(token: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.post(url, json=INFER_BODY, headers=headers, timeout=15)

    # The RoleBinding reaches the API server's authorizer a moment after it is written (its informer); the runtime
    # caches refusals too, so ask only once the API server says yes.
    subject = f"system:serviceaccount:{model_ns}:allowed"
    wait_for(lambda: kubectl.run("auth", "can-i", "get", "mlmodels.serving.mlmodel.io/t", "-n", model_ns,
                                 "--as", subject, check=False).stdout.strip() == "yes", 30, "the Role to apply")
    answered = infer(allowed)
    assert answered.status_code == 200, answered.text
    denied = infer(other)
    assert denied.status_code == 403, denied.text
    assert f"system:serviceaccount:{model_ns}:other may not get" in denied.json()["error"]
    assert infer(None).status_code == 401
    assert infer("not-a-token").status_code == 401
    assert httpx.get(f"http://{pod['status']['podIP']}:8080/v2/health/ready", timeout=5).status_code == 200

    kubectl.run("delete", "mlmodel", "t", "-n", model_ns, "--timeout=90s")
    selector = f"app.kubernetes.io/component=token-reviewer,serving.mlmodel.io/namespace={model_ns}"
    assert kubectl.json("get", "clusterrolebindings", "-l", selector)["items"] == []
