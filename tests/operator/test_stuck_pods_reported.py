"""A first revision that fails has nothing to roll back to: it is reported, recorded Failed in status.history and
left as Kubernetes leaves it, and the operator keeps running. More GPUs than a node of the pool has ->
Stalled/Unschedulable with the scheduler's message once the grace period is over; a crash-looping runtime (kwok's
simulated crashloop) -> Stalled/CrashLoop after the restart threshold; a runtime that never becomes ready ->
Reconciling/WaitingForModelReady, then Stalled/NeverReady."""

from __future__ import annotations

from typing import Any

import pytest

from tests.operator.cluster import OperatorProcess, Packages, mlmodel, wait_condition
from tests.support.kube import Kubectl, condition

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore]


def _failed_first_revision(model: dict[str, Any], reason: str) -> dict[str, Any]:
    """The checks every failed first revision passes; returns the Stalled condition."""
    stalled, ready, rolled_back = (condition(model, kind) for kind in ("Stalled", "Ready", "RolledBack"))
    assert stalled is not None
    assert ready is not None
    assert rolled_back is not None
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert rolled_back["status"] == "False"
    assert "no earlier revision served to roll back to" in stalled["message"]
    status = model["status"]
    assert [(e["revision"], e["outcome"], e["reason"]) for e in status["history"]] == [(1, "Failed", reason)]
    assert status.get("revision") is None
    assert status["desiredRevision"] == 1
    assert "rollout" not in status
    return stalled


def test_more_gpus_than_the_pool_has_is_unschedulable(
    operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str, packages: Packages
) -> None:
    namespace = model_namespace
    kubectl.apply(mlmodel("huge", packages.onnx("huge/1"), resources={"gpu": 5}), namespace)
    model = wait_condition(kubectl, namespace, "huge", "Stalled", reason="Unschedulable")
    stalled = _failed_first_revision(model, "Unschedulable")
    assert "Insufficient nvidia.com/gpu" in stalled["message"]
    assert model["status"]["availableReplicas"] == 0
    # kubectl wait for Ready gives up: the model is not Ready.
    waited = kubectl.run("wait", "-n", namespace, "mlmodel/huge", "--for=condition=Ready", "--timeout=2s", check=False)
    assert waited.returncode != 0
    assert operator.healthy()


def test_crash_looping_runtime_is_reported(
    operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str, packages: Packages
) -> None:
    namespace = model_namespace
    labels = {"labels": {"mlmodel.io/simulate": "crashloop"}}
    kubectl.apply(mlmodel("crashy", packages.onnx("crashy/1"), nodePool="cpu", podMetadata=labels), namespace)
    model = wait_condition(kubectl, namespace, "crashy", "Stalled", reason="CrashLoop")
    stalled = _failed_first_revision(model, "CrashLoop")
    assert "container runtime restarted" in stalled["message"]
    # Left as Kubernetes leaves it: the Deployment still runs revision 1.
    deployment = kubectl.json("get", "deployment", "crashy", "-n", namespace)
    assert deployment["spec"]["template"]["metadata"]["labels"]["serving.mlmodel.io/revision"] == "1"
    assert operator.healthy()


def test_never_ready_runtime_waits_then_fails(
    operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str, packages: Packages
) -> None:
    namespace = model_namespace
    labels = {"labels": {"mlmodel.io/simulate": "never-ready"}}
    kubectl.apply(mlmodel("slow", packages.onnx("slow/1"), nodePool="cpu", podMetadata=labels), namespace)
    model = wait_condition(kubectl, namespace, "slow", "Reconciling", reason="WaitingForModelReady")
    ready = condition(model, "Ready")
    assert ready is not None
    assert ready["status"] == "False"
    assert model["status"]["rollout"]["revision"] == 1
    model = wait_condition(kubectl, namespace, "slow", "Stalled", reason="NeverReady")
    _failed_first_revision(model, "NeverReady")
