"""spec.auth in the rendered objects, and the token reviewer's RBAC on the real API server.

Table tests: without spec.auth nothing changes; APIKeys sets MLMODEL_AUTH=apikeys and mounts the Secret of
key hashes read-only (group-readable only) where the runtime reads it; KubernetesTokens sets
MLMODEL_AUTH=kubernetes with the namespace and verb, runs the pods as the model's reviewer ServiceAccount and
mounts its token (no other mode mounts one); the setting is kept with the revision; the reviewer's objects
(what mlmodel_operator.access applies) are owned / labelled as the cleanup needs. On the API server: the CRD
requires apiKeysSecret with APIKeys only; the rendered Deployment with API keys is accepted (server-side
apply, dry run), and the token reviewer's ServiceAccount and binding apply and allow exactly TokenReview and
SubjectAccessReview creation beyond what every authenticated user has: no read of Secrets, MLModels or pods,
nothing in its own namespace."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mlmodel_operator.render import render_deployment
from mlmodel_operator.render.auth import render_token_review_rbac, reviewer_selector, token_reviewer_name
from mlmodel_operator.spec import MLModelSpec, RevisionSettings
from pydantic import ValidationError

from tests.operator.cluster import get_model, mlmodel
from tests.operator.factories import model, render_input
from tests.support.kube import Kubectl

AUTH = {"mode": "APIKeys", "apiKeysSecret": "fraud-keys"}
TOKENS = {"mode": "KubernetesTokens"}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def test_no_auth_renders_nothing_of_it() -> None:
    deployment = render_deployment(render_input(model()))
    assert not [e for e in _container(deployment)["env"] if e["name"].startswith("MLMODEL_AUTH")]
    assert [v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]] == ["model", "tmp", "shadow"]


def test_api_keys_mount_the_secret_of_hashes() -> None:
    inp = render_input(model(auth=AUTH))
    deployment = render_deployment(inp)
    container = _container(deployment)
    env = {e["name"]: e["value"] for e in container["env"] if e["name"].startswith("MLMODEL_AUTH")}
    assert env == {"MLMODEL_AUTH": "apikeys", "MLMODEL_AUTH_API_KEYS_DIR": "/etc/mlmodel/api-keys"}
    assert {"name": "api-keys", "mountPath": "/etc/mlmodel/api-keys", "readOnly": True} in container["volumeMounts"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["api-keys"] == {"name": "api-keys", "secret": {"secretName": "fraud-keys", "defaultMode": 0o440}}
    assert RevisionSettings.of(inp.model.spec).auth == inp.model.spec.auth


@pytest.mark.parametrize("auth", [{"mode": "Basic", "apiKeysSecret": "k"},
                                  {"mode": "APIKeys", "apiKeysSecret": "Not_A_Name"},
                                  {"mode": "KubernetesTokens", "verb": "Get Things"}])
def test_bad_auth_is_refused(auth: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        MLModelSpec.model_validate({"source": {"uri": "s3://b/m/"}, "auth": auth})


def test_kubernetes_tokens_run_the_pods_as_the_models_reviewer() -> None:
    inp = render_input(model(name="fraud", namespace="risk", auth=TOKENS))
    deployment = render_deployment(inp)
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in _container(deployment)["env"] if e["name"].startswith("MLMODEL_AUTH")}
    assert env == {"MLMODEL_AUTH": "kubernetes", "MLMODEL_AUTH_NAMESPACE": "risk", "MLMODEL_AUTH_VERB": "get"}
    assert pod["serviceAccountName"] == "fraud-token-reviewer"
    assert pod["serviceAccount"] == "fraud-token-reviewer"  # owned too, so that turning auth off removes both
    assert pod["automountServiceAccountToken"] is True  # the only mode with a token in the pod
    assert [v["name"] for v in pod["volumes"]] == ["model", "tmp", "shadow"]  # no key Secret
    custom = render_deployment(render_input(model(auth={**TOKENS, "verb": "infer"})))
    assert {"name": "MLMODEL_AUTH_VERB", "value": "infer"} in _container(custom)["env"]
    assert RevisionSettings.of(inp.model.spec).auth == inp.model.spec.auth  # kept with the revision


@pytest.mark.parametrize("auth", [None, AUTH])
def test_other_modes_mount_no_token(auth: dict[str, Any] | None) -> None:
    pod = render_deployment(render_input(model(auth=auth)))["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod
    assert "serviceAccount" not in pod


def test_token_reviewer_rbac_is_pure() -> None:
    m = model(name="fraud", namespace="risk", auth=TOKENS)
    account, binding = render_token_review_rbac(m)
    assert account["metadata"]["name"] == "fraud-token-reviewer"
    assert account["metadata"]["namespace"] == "risk"
    assert account["metadata"]["ownerReferences"][0]["uid"] == m.metadata.uid  # collected with the MLModel
    assert account["automountServiceAccountToken"] is False
    assert binding["metadata"]["name"] == "mlmodel:risk:fraud:token-reviewer"
    assert "ownerReferences" not in binding["metadata"]  # cluster-scoped: the operator deletes it itself
    assert binding["metadata"]["labels"]["serving.mlmodel.io/namespace"] == "risk"
    assert binding["metadata"]["labels"]["serving.mlmodel.io/model-uid"] == m.metadata.uid
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "system:auth-delegator"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "fraud-token-reviewer", "namespace": "risk"}]
    assert reviewer_selector("risk", "fraud") == (
        "app.kubernetes.io/component=token-reviewer,app.kubernetes.io/instance=fraud,"
        "app.kubernetes.io/managed-by=mlmodel-operator,serving.mlmodel.io/namespace=risk")
    for obj in (account, binding):
        labels = obj["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in (p.split("=") for p in reviewer_selector("risk", "fraud").split(",")))


@pytest.mark.cluster
@pytest.mark.parametrize(("auth", "error"), [
    ({"mode": "APIKeys"}, "spec.auth.apiKeysSecret is required with mode APIKeys"),
    ({"mode": "KubernetesTokens", "apiKeysSecret": "k"}, "spec.auth.apiKeysSecret is only for mode APIKeys"),
    ({"mode": "KubernetesTokens"}, None),
    ({"mode": "APIKeys", "apiKeysSecret": "k"}, None),
])
def test_auth_modes_at_admission(auth: dict[str, Any], error: str | None, crd: None, kubectl: Kubectl,
                                 namespace: str) -> None:
    result = kubectl.run("apply", "-n", namespace, "-f", "-", stdin=mlmodel("m", "s3://models/m/1/", auth=auth),
                         check=False)
    if error is None:
        assert result.returncode == 0, result.stderr
        assert get_model(kubectl, namespace, "m")["spec"]["auth"].get("verb", "get") == "get"
    else:
        assert result.returncode != 0
        assert error in result.stderr, result.stderr


@pytest.mark.cluster
def test_rendered_auth_objects_on_the_api_server(kubectl: Kubectl, namespace: str, crd: None) -> None:
    deployment = render_deployment(render_input(model(namespace=namespace, auth=AUTH)))
    deployment["metadata"].pop("ownerReferences")  # its MLModel does not exist here
    kubectl.run("apply", "--server-side", "--dry-run=server", "--field-manager=test", "-f", "-",
                stdin=json.dumps(deployment))
    objects = render_token_review_rbac(model(name="fraud", namespace=namespace, auth=TOKENS))
    objects[0]["metadata"].pop("ownerReferences")  # its MLModel does not exist here
    account, binding = token_reviewer_name(namespace, "fraud")
    try:
        for obj in objects:
            kubectl.run("apply", "--server-side", "--field-manager=test", "-f", "-", stdin=json.dumps(obj))
        subject = f"system:serviceaccount:{namespace}:{account}"

        def can(*args: str) -> bool:
            done = kubectl.run("auth", "can-i", *args, "--as", subject, check=False)
            return done.stdout.strip() == "yes"

        assert can("create", "tokenreviews.authentication.k8s.io")
        assert can("create", "subjectaccessreviews.authorization.k8s.io")
        for verb, resource in (("get", "secrets"), ("list", "secrets"), ("get", "mlmodels.serving.mlmodel.io"),
                               ("list", "pods"), ("create", "pods"), ("create", "serviceaccounts/token"),
                               ("get", "configmaps"), ("create", "clusterrolebindings.rbac.authorization.k8s.io")):
            assert not can(verb, resource, "-n", namespace), (verb, resource)
            assert not can(verb, resource, "--all-namespaces"), (verb, resource)
    finally:
        kubectl.run("delete", "clusterrolebinding", binding, "--ignore-not-found", check=False)
