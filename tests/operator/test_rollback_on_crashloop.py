"""A new revision whose pods crash-loop is rolled back automatically: revision 1's own ReplicaSet (the same
object) is scaled back up and serves; RolledBack, Stalled (naming revision 2 and CrashLoop) and Ready are set,
with one Warning event; status.history shows 1 Serving, 2 Failed; the metrics count one rollback and show
revision 1 serving. Resyncs later, revision 2 has not been retried; the retry annotation retries it once (it
fails again and is rolled back again); then a valid revision 3 rolls out and serves, and the history says so."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.operator.cluster import OperatorProcess, Packages, get_model, mlmodel, wait_condition
from tests.support.kube import Kubectl, condition
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore]

CRASHLOOP = {"labels": {"mlmodel.io/simulate": "crashloop"}}


def _replicasets(kubectl: Kubectl, namespace: str) -> dict[str, dict[str, Any]]:
    items = kubectl.json("get", "rs", "-n", namespace, "-l", "app.kubernetes.io/instance=m")["items"]
    return {rs["metadata"]["labels"]["serving.mlmodel.io/revision"]: rs for rs in items}


def _history(model: dict[str, Any]) -> list[tuple[int, str, str | None]]:
    return [(e["revision"], e["outcome"], e.get("reason")) for e in model["status"]["history"]]


def _rolled_back_and_serving(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    wait_condition(kubectl, namespace, "m", "RolledBack", reason="CrashLoop")
    return wait_condition(kubectl, namespace, "m", "Ready", reason="Serving")


def test_crash_loop_is_rolled_back_to_the_same_replicaset(
    operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str, packages: Packages
) -> None:
    namespace = model_namespace
    labels = {"namespace": namespace, "name": "m"}
    # Replace: one old pod goes first, so revision 1's ReplicaSet really is scaled down and back up.
    kubectl.apply(mlmodel("m", packages.onnx("m/1", seed=1), nodePool="cpu", replicas=2,
                          rollout={"strategy": "Replace"}), namespace)
    wait_condition(kubectl, namespace, "m", "Ready", reason="Serving")
    first = _replicasets(kubectl, namespace)["1"]
    rollbacks = operator.metric("mlmodel_operator_rollbacks_total", **labels)
    rolled_back = operator.metric("mlmodel_operator_rollouts_total", result="rolled_back")

    patch = {"spec": {"source": {"uri": packages.onnx("m/2", seed=2)}, "podMetadata": CRASHLOOP}}
    kubectl.run("patch", "mlmodel", "m", "-n", namespace, "--type=merge", "-p", json.dumps(patch))
    wait_for(lambda: _replicasets(kubectl, namespace).get("2"), 30, "revision 2's ReplicaSet")
    model = _rolled_back_and_serving(kubectl, namespace)

    status = model["status"]
    assert (status["revision"], status["desiredRevision"]) == (1, 2)
    assert _history(model) == [(1, "Serving", None), (2, "Failed", "CrashLoop")]
    assert "restarted" in status["history"][1]["message"]
    stalled, reconciling = condition(model, "Stalled"), condition(model, "Reconciling")
    assert stalled is not None
    assert reconciling is not None
    assert (stalled["status"], stalled["reason"]) == ("True", "RolledBack")
    assert "revision 2 failed (CrashLoop" in stalled["message"]
    assert "rolled back to revision 1" in stalled["message"]
    assert reconciling["status"] == "False"
    kubectl.run("wait", "-n", namespace, "mlmodel/m", "--for=condition=RolledBack", "--timeout=5s")

    # Revision 1's own ReplicaSet serves again, at full strength; revision 2's is scaled to zero.
    wait_for(lambda: _replicasets(kubectl, namespace)["1"]["status"].get("availableReplicas") == 2, 30,
             "revision 1's ReplicaSet to have 2 available replicas")
    replicasets = _replicasets(kubectl, namespace)
    assert replicasets["1"]["metadata"]["uid"] == first["metadata"]["uid"]
    assert replicasets["1"]["spec"]["replicas"] == 2
    assert replicasets["2"]["spec"]["replicas"] == 0
    deployment = kubectl.json("get", "deployment", "m", "-n", namespace)
    assert deployment["spec"]["template"]["metadata"]["labels"]["serving.mlmodel.io/revision"] == "1"

    events = kubectl.json("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=m")["items"]
    warnings = [(e["reason"], e["message"]) for e in events if e["type"] == "Warning"]
    assert len(warnings) == 1, warnings
    assert warnings[0][0] == "RolledBack"
    assert "revision 2 failed (CrashLoop" in warnings[0][1]

    assert operator.metric("mlmodel_operator_rollbacks_total", reason="CrashLoop", **labels) == rollbacks + 1
    assert operator.metric("mlmodel_operator_rollouts_total", result="rolled_back") == rolled_back + 1
    assert operator.metric("mlmodel_operator_model_serving_revision_info", revision="1", **labels) == 1
    assert operator.metric("mlmodel_operator_model_serving_revision_info", revision="2", **labels) == 0
    assert operator.metric("mlmodel_operator_model_condition", condition="RolledBack", status="True", **labels) == 1
    assert operator.metric("mlmodel_operator_model_condition", condition="Ready", status="True", **labels) == 1

    # Resyncs later, the failed revision has not been retried.
    passes = operator.metric("mlmodel_operator_reconcile_total")
    wait_for(lambda: operator.metric("mlmodel_operator_reconcile_total") >= passes + 3, 30, "three more passes")
    assert _replicasets(kubectl, namespace)["2"]["spec"]["replicas"] == 0
    assert _history(get_model(kubectl, namespace, "m")) == _history(model)

    # The retry annotation tries revision 2 once more: it crash-loops again and is rolled back again.
    kubectl.run("annotate", "mlmodel", "m", "-n", namespace, "serving.mlmodel.io/retry=first")
    wait_for(lambda: _replicasets(kubectl, namespace)["2"]["spec"]["replicas"] > 0, 30, "revision 2 retried")
    wait_for(lambda: operator.metric("mlmodel_operator_rollbacks_total", **labels) == rollbacks + 2, 60,
             "the second rollback")
    model = _rolled_back_and_serving(kubectl, namespace)
    assert model["status"]["lastRetry"] == "first"
    assert _history(model) == [(1, "Serving", None), (2, "Failed", "CrashLoop")]

    # A valid revision 3 after the failed 2: it rolls out and serves.
    patch = {"spec": {"source": {"uri": packages.onnx("m/3", seed=3)}, "podMetadata": {"labels": None}}}
    kubectl.run("patch", "mlmodel", "m", "-n", namespace, "--type=merge", "-p", json.dumps(patch))
    model = wait_condition(kubectl, namespace, "m", "Ready", reason="Serving")
    model = wait_for(lambda: (m := get_model(kubectl, namespace, "m"))["status"]["revision"] == 3 and m, 30,
                     "revision 3 to serve")
    assert _history(model) == [(1, "Superseded", None), (2, "Failed", "CrashLoop"), (3, "Serving", None)]
    assert (condition(model, "RolledBack") or {}).get("status") == "False"
    assert (condition(model, "Stalled") or {}).get("status") == "False"
    assert model["status"]["desiredRevision"] == 3
    assert operator.metric("mlmodel_operator_model_serving_revision_info", revision="1", **labels) == 0
    assert operator.metric("mlmodel_operator_model_serving_revision_info", revision="3", **labels) == 1
