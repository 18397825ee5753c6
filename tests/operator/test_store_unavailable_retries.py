"""An object store that cannot be reached is a temporary problem: the MLModel shows Reconciling/
ValidatingPackage (not Stalled), nothing is deployed or changed, and the operator retries with backoff
until the store answers; then the model is served."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.operator.cluster import OperatorProcess, Packages, get_model, mlmodel, wait_condition
from tests.support.kube import Kubectl, condition
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore]

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def test_unreachable_store_is_retried_then_served(
    operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str, packages: Packages,
    s3_env: dict[str, str],
) -> None:
    namespace = model_namespace
    uri = packages.onnx("later/1")
    manifest = mlmodel("later", uri, nodePool="cpu")
    body = yaml.safe_load(manifest)
    body["spec"]["source"]["endpoint"] = UNREACHABLE
    kubectl.apply(json.dumps(body), namespace)

    model = wait_condition(kubectl, namespace, "later", "Reconciling", reason="ValidatingPackage")
    reconciling = condition(model, "Reconciling")
    stalled = condition(model, "Stalled")
    assert reconciling is not None
    assert stalled is not None
    assert "unreachable" in reconciling["message"]
    assert stalled["status"] == "False"
    # Retried, not given up: more validation attempts keep failing temporarily.
    failures = operator.metric("mlmodel_operator_package_validations_total", result="StoreUnavailable")
    wait_for(lambda: operator.metric("mlmodel_operator_package_validations_total", result="StoreUnavailable")
             >= failures + 2, 30, "two more validation attempts")
    assert kubectl.run("get", "deployment", "later", "-n", namespace, check=False).returncode != 0

    kubectl.run("patch", "mlmodel", "later", "-n", namespace, "--type=merge",
                "-p", json.dumps({"spec": {"source": {"endpoint": s3_env["AWS_ENDPOINT_URL"]}}}))
    wait_condition(kubectl, namespace, "later", "Ready", reason="Serving")
    assert get_model(kubectl, namespace, "later")["status"]["package"]["uri"] == uri
