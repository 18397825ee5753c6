"""spec.auth in the rendered objects, and the token reviewer's RBAC on the real API server.

Table tests: without spec.auth nothing changes; APIKeys sets MLMODEL_AUTH=apikeys and mounts the Secret of
key hashes read-only (group-readable only) where the runtime reads it; the setting is kept with the
revision; the CRD refuses APIKeys without a Secret. On the API server: the rendered Deployment with API
keys is accepted (server-side apply, dry run), and the token reviewer's ServiceAccount and binding apply
and allow exactly TokenReview and SubjectAccessReview creation beyond what every authenticated user has:
no read of Secrets, MLModels or pods, nothing in its own namespace."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mlmodel_operator.render import render_deployment
from mlmodel_operator.render.auth import render_token_review_rbac, token_reviewer_name
from mlmodel_operator.spec import MLModelSpec, RevisionSettings
from pydantic import ValidationError

from tests.operator.factories import model, render_input
from tests.support.kube import Kubectl

AUTH = {"mode": "APIKeys", "apiKeysSecret": "fraud-keys"}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def test_no_auth_renders_nothing_of_it() -> None:
    deployment = render_deployment(render_input(model()))
    assert not [e for e in _container(deployment)["env"] if e["name"].startswith("MLMODEL_AUTH")]
    assert [v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]] == ["model", "tmp"]


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


@pytest.mark.parametrize("auth", [{"mode": "APIKeys"}, {"mode": "Basic", "apiKeysSecret": "k"},
                                  {"mode": "APIKeys", "apiKeysSecret": "Not_A_Name"}])
def test_bad_auth_is_refused(auth: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        MLModelSpec.model_validate({"source": {"uri": "s3://b/m/"}, "auth": auth})


def test_token_reviewer_rbac_is_pure() -> None:
    account, binding = render_token_review_rbac("risk", "fraud")
    assert account["metadata"] == {"name": "fraud-token-reviewer", "namespace": "risk",
                                   "labels": account["metadata"]["labels"]}
    assert binding["roleRef"]["name"] == "system:auth-delegator"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "fraud-token-reviewer", "namespace": "risk"}]


@pytest.mark.cluster
def test_rendered_auth_objects_on_the_api_server(kubectl: Kubectl, namespace: str, crd: None) -> None:
    deployment = render_deployment(render_input(model(namespace=namespace, auth=AUTH)))
    deployment["metadata"].pop("ownerReferences")  # its MLModel does not exist here
    kubectl.run("apply", "--server-side", "--dry-run=server", "--field-manager=test", "-f", "-",
                stdin=json.dumps(deployment))
    objects = render_token_review_rbac(namespace, "fraud")
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
