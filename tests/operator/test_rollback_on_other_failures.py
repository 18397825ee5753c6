"""Other failures of a new revision, three models at once: pods that run but never become ready (kwok's
never-ready stage) -> NeverReady and a rollback; more GPUs than a node has -> Unschedulable after the grace
period and a rollback; a crash loop with spec.rollout.autoRollback off -> reported (Stalled/CrashLoop, history
Failed), the failed rollout left as Kubernetes leaves it, revision 1's pods still serving."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.operator.cluster import OperatorProcess, Packages, mlmodel, wait_condition
from tests.support.kube import Kubectl, condition

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore]


def _history(model: dict[str, Any]) -> list[tuple[int, str, str | None]]:
    return [(e["revision"], e["outcome"], e.get("reason")) for e in model["status"]["history"]]


def _template_revision(kubectl: Kubectl, namespace: str, name: str) -> str:
    deployment = kubectl.json("get", "deployment", name, "-n", namespace)
    return str(deployment["spec"]["template"]["metadata"]["labels"]["serving.mlmodel.io/revision"])


def test_never_ready_and_unschedulable_roll_back_and_without_auto_rollback_it_is_reported(
    operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str, packages: Packages
) -> None:
    ns = model_namespace
    kubectl.apply(mlmodel("slow", packages.onnx("slow/1"), nodePool="cpu"), ns)
    kubectl.apply(mlmodel("huge", packages.onnx("huge/1"), resources={"gpu": 1}), ns)
    kubectl.apply(mlmodel("kept", packages.onnx("kept/1"), nodePool="cpu", rollout={"autoRollback": False}), ns)
    for name in ("slow", "huge", "kept"):
        wait_condition(kubectl, ns, name, "Ready", reason="Serving")

    changes = {
        "slow": {"podMetadata": {"labels": {"mlmodel.io/simulate": "never-ready"}}},
        "huge": {"resources": {"gpu": 5}},
        "kept": {"podMetadata": {"labels": {"mlmodel.io/simulate": "crashloop"}}},
    }
    for name, change in changes.items():
        kubectl.run("patch", "mlmodel", name, "-n", ns, "--type=merge", "-p", json.dumps({"spec": change}))

    for name, reason in (("slow", "NeverReady"), ("huge", "Unschedulable")):
        wait_condition(kubectl, ns, name, "RolledBack", reason=reason)
        model = wait_condition(kubectl, ns, name, "Ready", reason="Serving")
        assert _history(model) == [(1, "Serving", None), (2, "Failed", reason)]
        assert (model["status"]["revision"], model["status"]["desiredRevision"]) == (1, 2)
        stalled = condition(model, "Stalled")
        assert stalled is not None
        assert (stalled["status"], stalled["reason"]) == ("True", "RolledBack")
        assert f"revision 2 failed ({reason}" in stalled["message"]
        assert _template_revision(kubectl, ns, name) == "1"
    huge = condition(wait_condition(kubectl, ns, "huge", "RolledBack", reason="Unschedulable"), "RolledBack")
    assert huge is not None
    assert "Insufficient nvidia.com/gpu" in huge["message"]

    kept = wait_condition(kubectl, ns, "kept", "Stalled", reason="CrashLoop")
    assert _history(kept) == [(1, "Serving", None), (2, "Failed", "CrashLoop")]
    stalled, ready, rolled_back = (condition(kept, kind) for kind in ("Stalled", "Ready", "RolledBack"))
    assert stalled is not None
    assert ready is not None
    assert rolled_back is not None
    assert "autoRollback is off" in stalled["message"]
    assert (ready["status"], rolled_back["status"]) == ("False", "False")
    # Left as Kubernetes leaves it: the Deployment still asks for revision 2; revision 1's pod still serves.
    assert _template_revision(kubectl, ns, "kept") == "2"
    assert kept["status"]["revision"] == 1
    assert kept["status"]["availableReplicas"] == 1
