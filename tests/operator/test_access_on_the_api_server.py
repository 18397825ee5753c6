"""spec.auth KubernetesTokens and spec.networkPolicy carried out by a real reconcile pass against the real API
server (the operator's Reconciler and KubeApi; only the package check is a table, tests/operator/fakeapi.py):

- the pass applies the model's reviewer ServiceAccount (owned by the MLModel) and its ClusterRoleBinding to
  system:auth-delegator (which allow the two reviews and nothing else) before the Deployment, whose pods the
  API server then admits as that ServiceAccount; the NetworkPolicy is stored exactly as rendered; another pass
  writes none of them again;
- auth and the policy turned off: the policy is deleted at once, the binding and the ServiceAccount once the
  token revision's pods are gone; auth on again and the model deleted: no ClusterRoleBinding is left behind;
- end to end: a real runtime process checks tokens as the ServiceAccount the operator made (its token, no
  other right): a ServiceAccount with `get` on the MLModel passes, another is 403, garbage is 401, and a token
  that expired is 401. TokenRequest will not issue one that lives under 10 minutes, so the expired token is
  signed with the local cluster's own ServiceAccount signing key (hack/localcluster passes it to kube-apiserver
  as --service-account-signing-key-file), with the claims of a real token of an allowed ServiceAccount and
  `exp` in the past; the same claims with `exp` ahead pass, so the signature is right and the expiry is what
  the API server's TokenReview refuses.

The local cluster's network (bridge CNI, no policy controller) does not enforce NetworkPolicy, so no traffic is
tested here: docs/access.md."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from mlmodel_operator.adapters.kube import KubeApi
from mlmodel_operator.metrics import OperatorMetrics
from mlmodel_operator.reconcile import Reconciler
from mlmodel_operator.render.auth import reviewer_selector
from mlmodel_operator.render.network_policy import network_rules, render_network_policy
from mlmodel_operator.spec import MLModel
from prometheus_client import CollectorRegistry

from hack.localcluster import Layout
from tests.operator import factories
from tests.operator.cluster import get_model, mlmodel
from tests.operator.fakeapi import FakePackages
from tests.runtime.conftest import mlp_package
from tests.runtime.models import json_body
from tests.runtime.process import start_server
from tests.support.kube import Kubectl
from tests.support.tokens import token_kubeconfig
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster

MODEL = "mlp"  # the runtime's model name: what its SubjectAccessReview asks about
URI = "s3://models/mlp/1/"
TOKENS = {"mode": "KubernetesTokens"}
ACCOUNT = f"{MODEL}-token-reviewer"
NETWORK = {"enabled": False, "apiServer": [{"cidr": "198.19.0.1/32"}], "apiServerPort": 6443,
           "operator": [{"namespace": "mlmodel-system", "podLabels": {"app.kubernetes.io/name": "mlmodel-operator"}}]}
ROLE = f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: use-{MODEL}}}
rules:
- {{apiGroups: [serving.mlmodel.io], resources: [mlmodels], resourceNames: [{MODEL}], verbs: [get]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: use-{MODEL}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: use-{MODEL}}}
subjects: [{{kind: ServiceAccount, name: allowed}}]
"""


@pytest.fixture
def reconciler(kube_api: Any, namespace: str) -> Iterator[Reconciler]:
    """A Reconciler as the operator's (the package check from a table); its model's binding is removed after
    the test, as kopf's delete handler would (the namespace fixture deletes the namespace, not the binding)."""
    packages = FakePackages()
    packages.add(URI, "sha256:" + "01" * 32)
    config = factories.config(networkPolicy=NETWORK)
    kube = KubeApi(kube_api, "mlmodel-operator", OperatorMetrics(CollectorRegistry()))
    reconciler = Reconciler(config, kube, packages, OperatorMetrics(CollectorRegistry()), scrape=lambda targets: {})
    yield reconciler
    reconciler.revoke(namespace, MODEL)


def _apply_model(kubectl: Kubectl, namespace: str, **spec: Any) -> None:
    kubectl.apply(mlmodel(MODEL, URI, secret=None, nodePool="cpu", replicas=1, **spec), namespace)


def _binding(namespace: str) -> str:
    return f"mlmodel:{namespace}:{MODEL}:token-reviewer"


def _bindings(kubectl: Kubectl, namespace: str) -> list[str]:
    items = kubectl.json("get", "clusterrolebindings", "-l", reviewer_selector(namespace, MODEL))["items"]
    return [b["metadata"]["name"] for b in items]


def _exists(kubectl: Kubectl, *args: str) -> bool:
    return kubectl.run("get", *args, check=False).returncode == 0


def _versions(kubectl: Kubectl, namespace: str) -> list[str]:
    return [kubectl.json("get", *args)["metadata"]["resourceVersion"] for args in (
        ("serviceaccount", ACCOUNT, "-n", namespace), ("clusterrolebinding", _binding(namespace)),
        ("networkpolicy", MODEL, "-n", namespace))]


def test_the_pass_applies_and_removes_the_reviewer_and_the_policy(
    crd: None, kubectl: Kubectl, namespace: str, reconciler: Reconciler
) -> None:
    _apply_model(kubectl, namespace, auth=TOKENS, networkPolicy={"allowFrom": [{"namespace": "gateway"}]})
    reconciler.reconcile(namespace, MODEL)
    model = MLModel.model_validate(get_model(kubectl, namespace, MODEL))

    account = kubectl.json("get", "serviceaccount", ACCOUNT, "-n", namespace)
    assert [(r["kind"], r["uid"]) for r in account["metadata"]["ownerReferences"]] == [("MLModel", model.metadata.uid)]
    assert account["automountServiceAccountToken"] is False
    binding = kubectl.json("get", "clusterrolebinding", _binding(namespace))
    assert binding["roleRef"]["name"] == "system:auth-delegator"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": namespace}]
    policy = kubectl.json("get", "networkpolicy", MODEL, "-n", namespace)
    rules = network_rules(model, reconciler.config)
    assert rules is not None
    rendered = render_network_policy(model, rules)
    assert policy["spec"] == rendered["spec"]  # as rendered: nothing dropped or defaulted
    assert policy["spec"]["egress"][-1] == {"to": [{"ipBlock": {"cidr": "198.19.0.1/32"}}],
                                            "ports": [{"protocol": "TCP", "port": 6443}]}
    template = kubectl.json("get", "deployment", MODEL, "-n", namespace)["spec"]["template"]["spec"]
    assert template["serviceAccountName"] == ACCOUNT
    assert template["automountServiceAccountToken"] is True
    # Least privilege, as applied by the pass: the two reviews, and nothing else the model's pods could misuse.
    subject = f"system:serviceaccount:{namespace}:{ACCOUNT}"

    def can(*args: str) -> bool:
        return kubectl.run("auth", "can-i", *args, "--as", subject, check=False).stdout.strip() == "yes"

    assert can("create", "tokenreviews.authentication.k8s.io")
    assert can("create", "subjectaccessreviews.authorization.k8s.io")
    for verb, resource in (("get", "secrets"), ("get", "mlmodels.serving.mlmodel.io"), ("list", "pods"),
                           ("create", "clusterrolebindings.rbac.authorization.k8s.io"), ("patch", "serviceaccounts")):
        assert not can(verb, resource, "-n", namespace), (verb, resource)
        assert not can(verb, resource, "--all-namespaces"), (verb, resource)

    # The ServiceAccount existed before the Deployment: the API server admitted its pods as it.
    def pods_as_reviewer() -> bool:
        pods = kubectl.json("get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={MODEL}")["items"]
        return bool(pods) and all(p["spec"]["serviceAccountName"] == ACCOUNT for p in pods)

    wait_for(pods_as_reviewer, 60, "the model's pods, running as its reviewer")
    before = _versions(kubectl, namespace)
    reconciler.reconcile(namespace, MODEL)
    assert _versions(kubectl, namespace) == before  # nothing applied again

    _apply_model(kubectl, namespace, networkPolicy={"enabled": False})  # auth off too
    reconciler.reconcile(namespace, MODEL)
    assert not _exists(kubectl, "networkpolicy", MODEL, "-n", namespace)
    template = kubectl.json("get", "deployment", MODEL, "-n", namespace)["spec"]["template"]["spec"]
    assert template.get("serviceAccountName", "default") == "default"  # not restored from serviceAccount

    def reviewer_gone() -> bool:
        reconciler.reconcile(namespace, MODEL)  # a pass per look, as the Deployment's events would cause
        return not _bindings(kubectl, namespace) and not _exists(kubectl, "serviceaccount", ACCOUNT, "-n", namespace)

    wait_for(reviewer_gone, 90, "the reviewer to go once the token revision's pods are gone")

    _apply_model(kubectl, namespace, auth=TOKENS)
    reconciler.reconcile(namespace, MODEL)
    assert _bindings(kubectl, namespace) == [_binding(namespace)]
    kubectl.run("delete", "mlmodel", MODEL, "-n", namespace, "--wait=true")
    reconciler.reconcile(namespace, MODEL)  # finds it gone: forget (kopf's delete handler does the same)
    assert _bindings(kubectl, namespace) == []  # no ClusterRoleBinding left behind
    wait_for(lambda: not _exists(kubectl, "serviceaccount", ACCOUNT, "-n", namespace), 60,
             "the garbage collector to delete the owned ServiceAccount")


# -- end to end: the runtime as the operator's reviewer ------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def resigned(token: str, key: rsa.RSAPrivateKey, **claims: int) -> str:
    """`token`'s header and claims with `claims` replaced, signed RS256 with `key`."""
    header, payload, _ = token.split(".")
    body = {**json.loads(_unb64(payload)), **claims}
    signing_input = f"{header}.{_b64(json.dumps(body, separators=(',', ':')).encode())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


@pytest.fixture
def signing_key(kubeconfig: Path) -> rsa.RSAPrivateKey:
    layout = Layout.default()
    if kubeconfig.resolve() != layout.kubeconfig.resolve():
        pytest.skip("the ServiceAccount signing key is the local cluster's (hack/localcluster)")
    key = serialization.load_pem_private_key((layout.pki / "sa.key").read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _token(kubectl: Kubectl, namespace: str, account: str) -> str:
    if not _exists(kubectl, "serviceaccount", account, "-n", namespace):
        kubectl.run("create", "serviceaccount", account, "-n", namespace)
    token: str = kubectl.run("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    return token


def _review(kubectl: Kubectl, token: str) -> dict[str, Any]:
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    status: dict[str, Any] = json.loads(kubectl.run("create", "-o", "json", "-f", "-",
                                                    stdin=json.dumps(review)).stdout)["status"]
    return status


def test_runtime_checks_tokens_as_the_operators_reviewer(
    crd: None, kubectl: Kubectl, namespace: str, kubeconfig: Path, reconciler: Reconciler, tmp_path: Path,
    signing_key: rsa.RSAPrivateKey,
) -> None:
    _apply_model(kubectl, namespace, auth=TOKENS)
    reconciler.reconcile(namespace, MODEL)  # the operator makes the reviewer
    reviewer = token_kubeconfig(kubeconfig, _token(kubectl, namespace, ACCOUNT), tmp_path / "reviewer.kubeconfig")
    kubectl.apply(ROLE, namespace)
    allowed, other = _token(kubectl, namespace, "allowed"), _token(kubectl, namespace, "other")
    now = int(time.time())
    expired = resigned(allowed, signing_key, iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    fresh = resigned(allowed, signing_key, iat=now - 60, nbf=now - 60, exp=now + 600)

    review = _review(kubectl, expired)  # the API server itself refuses it, for its expiry
    assert not review.get("authenticated")
    assert "expired" in review.get("error", ""), review
    assert _review(kubectl, fresh)["user"]["username"] == f"system:serviceaccount:{namespace}:allowed"

    server = start_server(str(mlp_package(tmp_path, "onnx")), tmp_path, auth="kubernetes", auth_namespace=namespace,
                          auth_kubeconfig=reviewer)
    try:
        body = json_body({"input": np.ones((1, 4), np.float32)})

        def infer(token: str) -> Any:
            return server.infer(body, {"Authorization": f"Bearer {token}"})

        assert infer(allowed).status_code == 200
        assert infer(fresh).status_code == 200  # the signature is right: same key, same claims
        denied = infer(other)
        assert denied.status_code == 403
        assert f"system:serviceaccount:{namespace}:other may not get" in denied.json()["error"]
        assert infer("not-a-token").status_code == 401
        late = infer(expired)
        assert late.status_code == 401
        assert "not valid" in late.json()["error"]
        text = server.logs() + server.metrics_text()
        for token in (allowed, other, expired):
            assert token.split(".")[1] not in text  # no token, not even its claims
    finally:
        server.stop()
