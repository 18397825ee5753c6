"""An HPA that cannot scale (its metric is missing) is an event, not only a status field: one Warning
AutoscalingUnavailable when the reason appears (none more while it lasts, whatever its message says), one
Normal AutoscalingRecovered when it clears. Against the fake API."""

from __future__ import annotations

from typing import Any

from tests.operator import factories
from tests.operator.fakeapi import NS, Cluster

V1 = "s3://models/m/1/"
AUTO: dict[str, Any] = {"minReplicas": 2, "maxReplicas": 6, "target": {"metric": "InFlightRequests", "averageValue": 4}}


def _hpa(active: bool, message: str = "unable to get external metric") -> dict[str, Any]:
    scaling = ({"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound", "message": "ok"} if active
               else {"type": "ScalingActive", "status": "False", "reason": "FailedGetExternalMetric",
                     "message": message})
    return {
        "metadata": {"name": "m", "namespace": NS,
                     "ownerReferences": [{"kind": "ScaledObject", "name": "m", "uid": "keda"}]},
        "status": {"desiredReplicas": 2, "currentReplicas": 2, "conditions": [
            {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "message": "ok"}, scaling]},
    }


def test_a_failing_hpa_is_one_warning_and_its_recovery_one_normal_event() -> None:
    world = Cluster(config=factories.config())
    world.secret()
    world.packages.add(V1, "sha256:" + "01" * 32)
    world.create("m", V1, autoscaling=AUTO)
    op = world.reconciler()
    op.reconcile(NS, "m")
    assert "AutoscalingUnavailable" not in world.kube.event_reasons()

    world.kube.put("horizontalpodautoscalers", _hpa(active=False))
    op.reconcile(NS, "m")
    assert world.kube.event_reasons("Warning").count("AutoscalingUnavailable") == 1
    world.kube.put("horizontalpodautoscalers", _hpa(active=False, message="no metrics returned at 12:01"))
    op.reconcile(NS, "m")
    op.reconcile(NS, "m")
    assert world.kube.event_reasons("Warning").count("AutoscalingUnavailable") == 1, "same reason: no new event"

    world.kube.put("horizontalpodautoscalers", _hpa(active=True))
    op.reconcile(NS, "m")
    assert world.kube.event_reasons("Normal").count("AutoscalingRecovered") == 1
    assert world.status("m")["autoscaling"].get("problem") is None
