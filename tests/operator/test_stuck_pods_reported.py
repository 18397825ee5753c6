"""Pods that cannot make progress are reported, not left as an endless rollout: more GPUs than a node of
the pool has -> Stalled/Unschedulable with the scheduler's message, not Ready; a crash-looping runtime
(kwok's simulated crashloop) -> Stalled/CrashLoopBackOff; a runtime that never becomes ready ->
Reconciling/WaitingForModelReady."""

from __future__ import annotations

import pytest

from tests.operator.cluster import OperatorProcess, Packages, mlmodel, wait_condition
from tests.support.kube import Kubectl, condition

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore]


def test_more_gpus_than_the_pool_has_is_unschedulable(
    operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str, packages: Packages
) -> None:
    namespace = model_namespace
    kubectl.apply(mlmodel("huge", packages.onnx("huge/1"), resources={"gpu": 5}), namespace)
    model = wait_condition(kubectl, namespace, "huge", "Stalled", reason="Unschedulable")
    stalled = condition(model, "Stalled")
    ready = condition(model, "Ready")
    assert stalled is not None
    assert ready is not None
    assert "Insufficient nvidia.com/gpu" in stalled["message"]
    assert (ready["status"], ready["reason"]) == ("False", "Unschedulable")
    assert model["status"]["availableReplicas"] == 0
    # kubectl wait for Ready gives up: the model is not Ready.
    waited = kubectl.run("wait", "-n", namespace, "mlmodel/huge", "--for=condition=Ready", "--timeout=2s", check=False)
    assert waited.returncode != 0


def test_crash_looping_runtime_is_reported(
    operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str, packages: Packages
) -> None:
    namespace = model_namespace
    labels = {"labels": {"mlmodel.io/simulate": "crashloop"}}
    kubectl.apply(mlmodel("crashy", packages.onnx("crashy/1"), nodePool="cpu", podMetadata=labels), namespace)
    model = wait_condition(kubectl, namespace, "crashy", "Stalled", reason="CrashLoopBackOff")
    stalled = condition(model, "Stalled")
    assert stalled is not None
    assert "container runtime CrashLoopBackOff" in stalled["message"]


def test_never_ready_runtime_is_waiting_for_the_model(
    operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str, packages: Packages
) -> None:
    namespace = model_namespace
    labels = {"labels": {"mlmodel.io/simulate": "never-ready"}}
    kubectl.apply(mlmodel("slow", packages.onnx("slow/1"), nodePool="cpu", podMetadata=labels), namespace)
    model = wait_condition(kubectl, namespace, "slow", "Reconciling", reason="WaitingForModelReady")
    ready = condition(model, "Ready")
    assert ready is not None
    assert ready["status"] == "False"
