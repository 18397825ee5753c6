"""A name the model needs, held by a Deployment the operator did not make, against the real API server (the
operator's Reconciler and KubeApi; the package check from a table): the user's Deployment is left exactly as it
was (not adopted through server-side apply, not deleted), the MLModel says why (Stalled=True/NameConflict, an
event), and once the user deletes it the next pass creates the model's own."""

from __future__ import annotations

from typing import Any

import pytest
from mlmodel_operator.adapters.kube import KubeApi
from mlmodel_operator.metrics import OperatorMetrics
from mlmodel_operator.reconcile import Reconciler
from prometheus_client import CollectorRegistry

from tests.operator import factories
from tests.operator.cluster import get_model, mlmodel
from tests.operator.fakeapi import FakePackages
from tests.support.kube import Kubectl

pytestmark = pytest.mark.cluster

URI = "s3://models/m/1/"
THEIRS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: m, labels: {app: theirs}}
spec:
  replicas: 0
  selector: {matchLabels: {app: theirs}}
  template:
    metadata: {labels: {app: theirs}}
    spec: {containers: [{name: web, image: example.invalid/web:1}]}
"""


@pytest.fixture
def reconciler(kube_api: Any) -> Reconciler:
    packages = FakePackages()
    packages.add(URI, "sha256:" + "01" * 32)
    kube = KubeApi(kube_api, "mlmodel-operator", OperatorMetrics(CollectorRegistry()))
    return Reconciler(factories.config(), kube, packages, OperatorMetrics(CollectorRegistry()),
                      scrape=lambda targets: {})


def _condition(model: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in model["status"]["conditions"] if c["type"] == kind)


def test_a_users_deployment_is_neither_adopted_nor_deleted(
    crd: None, kubectl: Kubectl, namespace: str, reconciler: Reconciler
) -> None:
    kubectl.apply(THEIRS, namespace)
    before = kubectl.json("get", "deployment", "m", "-n", namespace)
    kubectl.apply(mlmodel("m", URI, secret=None, nodePool="cpu", replicas=1), namespace)
    reconciler.reconcile(namespace, "m")
    reconciler.reconcile(namespace, "m")

    after = kubectl.json("get", "deployment", "m", "-n", namespace)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]  # not written at all
    assert "ownerReferences" not in after["metadata"]
    assert kubectl.run("get", "service", "m", "-n", namespace, check=False).returncode != 0  # nothing applied
    model = get_model(kubectl, namespace, "m")
    stalled = _condition(model, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "NameConflict")
    assert "Deployment m exists and is not controlled by it" in stalled["message"]
    events = kubectl.json("get", "events", "-n", namespace, "--field-selector",
                          "involvedObject.kind=MLModel,reason=NameConflict")["items"]
    assert [e["type"] for e in events] == ["Warning"]

    kubectl.run("delete", "deployment", "m", "-n", namespace, "--wait=true")
    reconciler.reconcile(namespace, "m")
    ours = kubectl.json("get", "deployment", "m", "-n", namespace)
    assert [(r["kind"], r["name"], r["controller"]) for r in ours["metadata"]["ownerReferences"]] == [
        ("MLModel", "m", True)]
    assert _condition(get_model(kubectl, namespace, "m"), "Stalled")["reason"] != "NameConflict"
