"""spec.autoscaling against the real API server (the generated CRD, KEDA's CRDs, autoscaling/v2):
- spec.replicas and spec.autoscaling are refused together, with the message; the autoscaler's writes through
  the scale subresource are not; turning autoscaling off keeps the replicas it had set;
- the rendered ScaledObject and HPA are accepted by server-side apply as rendered (nothing pruned or
  defaulted away), through the operator's own adapter, and applying them again writes nothing;
- deleting the autoscaler of a model that has none is no error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mlmodel_operator.adapters.kube import KubeApi
from mlmodel_operator.metrics import OperatorMetrics
from mlmodel_operator.render.autoscaling import render_autoscaler
from mlmodel_operator.spec import MLModel
from prometheus_client import CollectorRegistry

from hack.localcluster import Layout
from hack.localcluster import keda as keda_parts
from hack.localcluster.kube import ControlPlane
from tests.operator.cluster import get_model, mlmodel
from tests.operator.factories import config
from tests.support.kube import Kubectl
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster

URI = "s3://models/m/1/"
AUTO: dict[str, Any] = {"minReplicas": 2, "maxReplicas": 6, "target": {"metric": "QueueDepth", "averageValue": 3}}
MESSAGE = "spec.replicas and spec.autoscaling are mutually exclusive"


@pytest.fixture(scope="module")
def keda_crds(kubeconfig: Any) -> None:
    layout = Layout.default()
    if kubeconfig.resolve() != layout.kubeconfig.resolve():
        pytest.skip("KEDA's CRDs come from the local build (hack/build/build-binaries.sh keda)")
    keda_parts.install_crds(ControlPlane(layout, layout.bin).kubectl)


@pytest.fixture
def kube(kube_api: Any) -> KubeApi:
    return KubeApi(kube_api, "mlmodel-operator", OperatorMetrics(CollectorRegistry()))


def test_replicas_with_autoscaling_is_refused(crd: None, kubectl: Kubectl, namespace: str) -> None:
    result = kubectl.run("apply", "-n", namespace, "-f", "-", stdin=mlmodel("m", URI, replicas=3, autoscaling=AUTO),
                         check=False)
    assert result.returncode != 0
    assert MESSAGE in result.stderr, result.stderr
    assert "spec.replicas" in result.stderr


def test_turning_autoscaling_on_asks_for_replicas_to_go(crd: None, kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(mlmodel("m", URI, replicas=2), namespace)
    on = kubectl.run("patch", "mlmodel", "m", "-n", namespace, "--type=merge",
                     "-p", '{"spec": {"autoscaling": {"maxReplicas": 4, "target": {"metric": "QueueDepth", '
                     '"averageValue": 2}}}}', check=False)
    assert on.returncode != 0
    assert MESSAGE in on.stderr
    kubectl.apply(mlmodel("m", URI, autoscaling=AUTO), namespace)  # kubectl apply drops replicas it set before
    spec = get_model(kubectl, namespace, "m")["spec"]
    assert "replicas" not in spec
    assert spec["autoscaling"]["minReplicas"] == 2


def test_autoscaler_writes_replicas_and_off_keeps_them(crd: None, kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(mlmodel("m", URI, autoscaling=AUTO), namespace)
    kubectl.run("scale", "mlmodel", "m", "-n", namespace, "--replicas=5")  # what the HPA does
    path = f"/apis/serving.mlmodel.io/v1alpha1/namespaces/{namespace}/mlmodels/m/scale"
    scale = json.loads(kubectl.run("get", "--raw", path).stdout)
    assert scale["spec"]["replicas"] == 5
    kubectl.apply(mlmodel("m", URI, autoscaling=AUTO), namespace)  # a GitOps-style re-apply: replicas stay
    assert get_model(kubectl, namespace, "m")["spec"]["replicas"] == 5
    kubectl.apply(mlmodel("m", URI), namespace)  # autoscaling off: the last count stays, no jump
    spec = get_model(kubectl, namespace, "m")["spec"]
    assert "autoscaling" not in spec
    assert spec["replicas"] == 5


def test_minimum_above_maximum_is_refused(crd: None, kubectl: Kubectl, namespace: str) -> None:
    bad = {**AUTO, "minReplicas": 7}
    result = kubectl.run("apply", "-n", namespace, "-f", "-", stdin=mlmodel("m", URI, autoscaling=bad), check=False)
    assert result.returncode != 0
    assert "minReplicas must not exceed maxReplicas" in result.stderr


def _stored_model(kubectl: Kubectl, namespace: str) -> MLModel:
    kubectl.apply(mlmodel("m", URI, autoscaling=AUTO), namespace)
    return MLModel.model_validate(get_model(kubectl, namespace, "m"))


def _within(ours: Any, stored: Any) -> bool:
    """Every field of `ours` is in `stored` with the same value (`stored` may have more)."""
    if isinstance(ours, dict):
        return isinstance(stored, dict) and all(k in stored and _within(v, stored[k]) for k, v in ours.items())
    return bool(ours == stored)


def _applied_at(obj: dict[str, Any]) -> list[str]:
    """When the operator's field manager last changed the object (an apply that changes nothing leaves it)."""
    return [f["time"] for f in obj["metadata"]["managedFields"] if f["manager"] == "mlmodel-operator"]


@pytest.mark.parametrize("engine", ["keda", "hpa"])
def test_rendered_autoscaler_is_applied_as_rendered(
    engine: str, crd: None, keda_crds: None, kubectl: Kubectl, namespace: str, kube: KubeApi
) -> None:
    model = _stored_model(kubectl, namespace)
    rendered = render_autoscaler(model, config(autoscaling={"engine": engine}))
    assert rendered is not None
    live = kube.apply(rendered)
    assert live["spec"] == rendered["spec"]
    assert live["metadata"]["ownerReferences"] == rendered["metadata"]["ownerReferences"]
    # The same object again changes nothing of ours: the operator's managedFields entry keeps its time (KEDA's
    # controller may write the object meanwhile, its finalizer and defaults, so resourceVersion and generation move).
    again = kube.apply(rendered)
    assert _applied_at(again) == _applied_at(live)
    stored = kube.get_autoscaler(rendered["kind"], namespace, "m")
    assert stored is not None
    # KEDA's controller, when it runs, adds fields of its own (advanced.scalingModifiers: {}); ours are unchanged.
    assert _within(rendered["spec"], stored["spec"])
    assert kube.delete_autoscaler(rendered["kind"], namespace, "m")
    # KEDA, when it runs, holds a finalizer on its ScaledObject until it has removed its HPA.
    wait_for(lambda: kube.get_autoscaler(rendered["kind"], namespace, "m") is None, 60, "the autoscaler to go")
    assert not kube.delete_autoscaler(rendered["kind"], namespace, "m")
