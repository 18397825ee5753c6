"""config.canary.gateway against the real API server with the Gateway API's own HTTPRoute CRD (sigs.k8s.io/
gateway-api from the Go module proxy, as the control plane's binaries come): a real pass applies the model's
HTTPRoute, the API server accepts and stores it as rendered (its schema and CEL rules: weights, parentRefs,
backendRefs), a second pass writes nothing, and a canary's weights are stored as the step asks.

No Gateway implementation runs in the local cluster, so no request goes through the route here (docs/canary.md)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from mlmodel_operator.adapters.kube import KubeApi
from mlmodel_operator.metrics import OperatorMetrics
from mlmodel_operator.reconcile import Reconciler
from mlmodel_operator.render.canary import render_http_route
from mlmodel_operator.spec import MLModel
from prometheus_client import CollectorRegistry

from tests.operator import factories
from tests.operator.cluster import get_model, mlmodel
from tests.operator.fakeapi import FakePackages
from tests.support.kube import Kubectl
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster

GATEWAY_API = "sigs.k8s.io/gateway-api@v1.6.3"
URI = "s3://models/m/1/"


@pytest.fixture(scope="session")
def http_route_crd(kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The HTTPRoute CRD of the Gateway API release, downloaded once through the Go module proxy."""
    res = subprocess.run(["go", "mod", "download", "-json", GATEWAY_API], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path_factory.mktemp("gomod"))
    assert res.returncode == 0, res.stderr
    crd = Path(json.loads(res.stdout)["Dir"]) / "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    kubectl.run("wait", "--for=condition=Established", "crd/httproutes.gateway.networking.k8s.io", "--timeout=60s")


@pytest.fixture
def reconciler(kube_api: Any) -> Reconciler:
    packages = FakePackages()
    packages.add(URI, "sha256:" + "01" * 32)
    config = factories.config(canary={"gateway": {"name": "models", "namespace": "gateways", "sectionName": "http"}})
    kube = KubeApi(kube_api, "mlmodel-operator", OperatorMetrics(CollectorRegistry()))
    return Reconciler(config, kube, packages, OperatorMetrics(CollectorRegistry()), scrape=lambda targets: {})


def test_the_pass_applies_the_models_httproute_as_rendered(
    crd: None, http_route_crd: None, kubectl: Kubectl, namespace: str, reconciler: Reconciler
) -> None:
    kubectl.apply(mlmodel("m", URI, secret=None, nodePool="cpu", replicas=1), namespace)
    reconciler.reconcile(namespace, "m")
    route = wait_for(lambda: kubectl.json("get", "httproute", "m", "-n", namespace), 30, "the HTTPRoute")
    model = MLModel.model_validate(get_model(kubectl, namespace, "m"))
    gateway = reconciler.config.canary.gateway
    assert gateway is not None
    assert route["spec"] == render_http_route(model, gateway, None)["spec"]  # stored as rendered
    [rule] = route["spec"]["rules"]
    assert [(b["name"], b["weight"]) for b in rule["backendRefs"]] == [("m", 100)]
    assert [r["uid"] for r in route["metadata"]["ownerReferences"]] == [model.metadata.uid]
    version = route["metadata"]["resourceVersion"]
    reconciler.reconcile(namespace, "m")
    assert kubectl.json("get", "httproute", "m", "-n", namespace)["metadata"]["resourceVersion"] == version

    # A canary's split as the API server stores it (its schema and rules accept the weights).
    weighted = render_http_route(model, gateway, 25)
    kubectl.run("apply", "--server-side", "--field-manager=mlmodel-operator", "--force-conflicts", "-f", "-",
                stdin=json.dumps(weighted))
    [rule] = kubectl.json("get", "httproute", "m", "-n", namespace)["spec"]["rules"]
    assert [(b["name"], b["weight"]) for b in rule["backendRefs"]] == [("m", 75), ("m-canary", 25)]
