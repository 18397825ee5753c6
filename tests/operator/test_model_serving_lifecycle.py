"""A real operator process on the local cluster: a valid ONNX package becomes a Deployment on the GPU pool
(pods on GPU nodes, Ready, `kubectl wait --for=condition=Ready` returns, printer columns show revision and
URL); a second package rolls out a new revision that becomes Ready with the new digest; `kubectl scale`
scales the Deployment; deleting the MLModel removes everything it created, and its per-model metrics."""

from __future__ import annotations

import json

import pytest

from tests.operator.cluster import OperatorProcess, Packages, get_model, mlmodel, wait_condition
from tests.support.kube import Kubectl
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore]


def test_package_serves_on_gpu_pool_then_rolls_out_a_new_one(
    operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str, packages: Packages
) -> None:
    namespace = model_namespace
    first = packages.onnx("fraud/1", seed=1)
    kubectl.apply(mlmodel("fraud", first, resources={"gpu": 1}), namespace)

    kubectl.run("wait", "-n", namespace, "mlmodel/fraud", "--for=condition=Ready", "--timeout=60s")
    model = get_model(kubectl, namespace, "fraud")
    status = model["status"]
    assert status["observedGeneration"] == model["metadata"]["generation"]
    assert status["revision"] == 1
    assert status["package"]["digest"].startswith("sha256:")
    assert status["url"] == f"http://fraud.{namespace}.svc.cluster.local:8080/v2/models/fraud"

    pods = kubectl.json("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/instance=fraud")["items"]
    assert len(pods) == 1
    node = kubectl.json("get", "node", pods[0]["spec"]["nodeName"])
    assert node["metadata"]["labels"]["pool"] == "gpu-a100"
    container = pods[0]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MLMODEL_PACKAGE_DIGEST"] == status["package"]["digest"]
    assert env["MLMODEL_MODEL_REVISION"] == "1"

    row = kubectl.run("get", "mlmodel", "fraud", "-n", namespace, "--no-headers").stdout.split()
    assert row[:5] == ["fraud", "True", "Serving", "1", "1/1"], row
    assert row[5] == status["url"]
    assert kubectl.run("get", "mlm", "-n", namespace, "-o", "name").stdout.strip() == "mlmodel.serving.mlmodel.io/fraud"

    second = packages.onnx("fraud/2", seed=2)
    kubectl.run("patch", "mlmodel", "fraud", "-n", namespace, "--type=merge",
                "-p", f'{{"spec": {{"source": {{"uri": "{second}"}}}}}}')
    model = wait_condition(kubectl, namespace, "fraud", "Ready", reason="Serving")
    assert model["status"]["revision"] == 2
    assert model["status"]["package"]["uri"] == second
    assert model["status"]["package"]["digest"] != status["package"]["digest"]
    selector = "app.kubernetes.io/instance=fraud"
    live = kubectl.json("get", "pods", "-n", namespace, "-l", f"{selector},serving.mlmodel.io/revision=2")
    assert len(live["items"]) == 1
    replicasets = kubectl.json("get", "rs", "-n", namespace, "-l", selector)["items"]
    by_revision = {rs["metadata"]["labels"]["serving.mlmodel.io/revision"]: rs["spec"]["replicas"]
                   for rs in replicasets}
    assert by_revision == {"1": 0, "2": 1}
    events = kubectl.json("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=fraud")["items"]
    assert {"RolloutStarted", "Ready"} <= {e["reason"] for e in events}


def test_scale_then_delete_leaves_nothing(
    operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str, packages: Packages
) -> None:
    namespace = model_namespace
    uri = packages.onnx("scaled/1")
    kubectl.apply(mlmodel("scaled", uri, nodePool="cpu"), namespace)
    wait_condition(kubectl, namespace, "scaled", "Ready", reason="Serving")

    kubectl.run("scale", "mlmodel/scaled", "-n", namespace, "--replicas=3")
    # Ready stays True/Serving while a serving revision scales: wait for the count itself.
    model = wait_for(lambda: (m := get_model(kubectl, namespace, "scaled"))["status"].get("availableReplicas") == 3
                     and m, 120, "3 available replicas")
    ready = next(c for c in model["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Serving")
    assert model["status"]["replicas"] == 3
    deployment = kubectl.json("get", "deployment", "scaled", "-n", namespace)
    assert deployment["spec"]["replicas"] == 3
    path = f"/apis/serving.mlmodel.io/v1alpha1/namespaces/{namespace}/mlmodels/scaled/scale"
    scale = json.loads(kubectl.run("get", "--raw", path).stdout)
    assert scale["status"]["replicas"] == 3
    assert scale["status"]["selector"] == "app.kubernetes.io/instance=scaled,app.kubernetes.io/name=mlmodel-runtime"

    model_labels = {"namespace": namespace, "name": "scaled"}
    assert operator.metric("mlmodel_operator_model_condition", condition="Ready", status="True", **model_labels) == 1
    assert operator.metric("mlmodel_operator_model_serving_revision_info", revision="1", **model_labels) == 1
    assert operator.metric("mlmodel_operator_leader") == 1  # no election: this replica reconciles
    kubectl.run("delete", "mlmodel", "scaled", "-n", namespace, "--timeout=60s")

    def leftovers() -> list[str]:
        found = kubectl.run("get", "deployments,replicasets,pods,services", "-n", namespace,
                            "-l", "app.kubernetes.io/instance=scaled", "-o", "name").stdout.split()
        return found

    wait_for(lambda: not leftovers(), 60, "the garbage collector to remove what the MLModel owned")
    assert operator.metric("mlmodel_operator_model_condition", **model_labels) == 0
    assert operator.metric("mlmodel_operator_model_serving_revision_info", **model_labels) == 0
