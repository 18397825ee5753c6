"""spec.autoscaling in reconcile passes, against the fake API (tests/operator/fakeapi.py):
- a new model with autoscaling gets spec.replicas = minReplicas through the scale subresource, then its
  Deployment and its ScaledObject (KEDA) or HPA (config), once: a steady model writes nothing more;
- turning autoscaling on keeps the replicas that run (within the bounds); turning it off deletes the
  autoscaler and keeps the replicas the HPA had set; changing the engine swaps the objects;
- the Deployment follows what the HPA writes to spec.replicas, and so does a rollback: the revision rolled back
  to serves with the replicas the HPA asked for;
- status.autoscaling shows the HPA's desired/current replicas and a failing condition (a missing metric) while
  the replicas stay; KEDA's own HPA is never deleted as if it were the operator's."""

from __future__ import annotations

from typing import Any

from mlmodel_operator.autoscaler import decide, observe
from mlmodel_operator.render.autoscaling import render_autoscaler

from tests.operator import factories
from tests.operator.fakeapi import NS, Cluster

V1 = "s3://models/m/1/"
V2 = "s3://models/m/2/"
AUTO: dict[str, Any] = {"minReplicas": 2, "maxReplicas": 6, "target": {"metric": "InFlightRequests", "averageValue": 4}}


def _world(**config: Any) -> Cluster:
    world = Cluster(config=factories.config(**config)) if config else Cluster()
    world.secret()
    world.packages.add(V1, "sha256:" + "01" * 32)
    world.packages.add(V2, "sha256:" + "02" * 32)
    return world


def _replicas(world: Cluster) -> int:
    return int(world.deployment("m")["spec"]["replicas"])



def test_new_model_starts_at_min_and_gets_its_scaled_object_once() -> None:
    world = _world()
    world.create("m", V1, autoscaling=AUTO)
    op = world.reconciler()
    op.reconcile(NS, "m")
    assert world.kube.model(NS, "m")["spec"]["replicas"] == 2
    assert _replicas(world) == 2
    [scaled] = [o for (r, _, _), o in world.kube.objects.items() if r == "scaledobjects"]
    assert scaled["spec"]["scaleTargetRef"]["kind"] == "MLModel"
    writes = [str(w) for w in world.kube.writes]
    assert writes[0] == "patch mlmodels/scale m"
    assert "apply scaledobjects m" in writes
    world.roll_out("m")
    op.reconcile(NS, "m")
    before = len(world.kube.writes)
    op.reconcile(NS, "m")
    op.reconcile(NS, "m")
    assert world.kube.writes[before:] == []


def test_hpa_engine_applies_an_hpa() -> None:
    world = _world(autoscaling={"engine": "hpa"})
    world.create("m", V1, autoscaling=AUTO)
    world.reconciler().reconcile(NS, "m")
    assert world.kube.get("horizontalpodautoscalers", NS, "m") is not None
    assert world.kube.get("scaledobjects", NS, "m") is None


def test_turning_on_keeps_the_running_replicas_and_off_keeps_the_hpas() -> None:
    world = _world()
    world.create("m", V1, replicas=4)
    op = world.reconciler()
    op.reconcile(NS, "m")
    world.roll_out("m")
    op.reconcile(NS, "m")
    model = world.kube.model(NS, "m")
    del model["spec"]["replicas"]  # the schema asks for replicas to go when autoscaling comes
    world.edit("m", {"autoscaling": AUTO})
    op.reconcile(NS, "m")
    assert world.kube.model(NS, "m")["spec"]["replicas"] == 4
    assert _replicas(world) == 4
    assert world.kube.get("scaledobjects", NS, "m") is not None

    world.hpa_scales("m", 5)
    op.reconcile(NS, "m")
    assert _replicas(world) == 5
    world.edit("m", {"autoscaling": None})
    op.reconcile(NS, "m")
    assert world.kube.get("scaledobjects", NS, "m") is None
    assert _replicas(world) == 5
    assert "autoscaling" not in world.status("m")


def test_rollback_keeps_the_replicas_the_hpa_asked_for() -> None:
    world = _world()
    world.create("m", V1, autoscaling=AUTO)
    op = world.reconciler()
    op.reconcile(NS, "m")
    world.roll_out("m")
    op.reconcile(NS, "m")
    world.edit("m", {"source": {"uri": V2}})
    op.reconcile(NS, "m")
    world.hpa_scales("m", 5)  # a scale-out while revision 2 rolls out
    op.reconcile(NS, "m")
    world.crash_loop("m", restarts=3)
    world.clock.advance(5)
    op.reconcile(NS, "m")
    assert world.revision("m") == 1  # rolled back
    assert _replicas(world) == 5


def test_status_shows_the_hpa_and_a_missing_metric() -> None:
    world = _world()
    world.create("m", V1, autoscaling=AUTO)
    op = world.reconciler()
    op.reconcile(NS, "m")
    world.kube.put("horizontalpodautoscalers", {
        "metadata": {"name": "m", "namespace": NS,
                     "ownerReferences": [{"kind": "ScaledObject", "name": "m", "uid": "keda"}]},
        "status": {"desiredReplicas": 2, "currentReplicas": 2, "conditions": [
            {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "message": "ok"},
            {"type": "ScalingActive", "status": "False", "reason": "FailedGetExternalMetric",
             "message": "unable to get external metric"}]},
    })
    op.reconcile(NS, "m")
    status = world.status("m")["autoscaling"]
    assert status["hpa"] == "m"
    assert (status["desiredReplicas"], status["currentReplicas"]) == (2, 2)
    assert status["scalingActive"] is False
    assert status["problem"] == "FailedGetExternalMetric: unable to get external metric"
    assert world.kube.get("horizontalpodautoscalers", NS, "m") is not None  # KEDA's, not deleted
    assert _replicas(world) == 2


def test_decide_deletes_only_what_the_operator_rendered() -> None:
    model = factories.model(autoscaling=AUTO)
    config = factories.config()
    ours = render_autoscaler(model, factories.config(autoscaling={"engine": "hpa"}))
    assert ours is not None
    keda_hpa = {"metadata": {"name": "fraud-detector", "ownerReferences": [{"kind": "ScaledObject", "uid": "x"}]}}
    assert decide(model, config, {"HorizontalPodAutoscaler": keda_hpa}, keda_hpa, 2).delete == ()
    assert decide(model, config, {"HorizontalPodAutoscaler": ours}, None, 2).delete == ("HorizontalPodAutoscaler",)
    going = {**ours, "metadata": {**ours["metadata"], "deletionTimestamp": "2026-11-22T10:00:00Z"}}
    assert decide(model, config, {"HorizontalPodAutoscaler": going}, None, 2).delete == ()


def test_at_limit_from_the_bounds_not_the_flipping_condition() -> None:
    bounds = factories.model(autoscaling=AUTO).spec.autoscaling
    assert bounds is not None
    seen = []
    for limited in ("True", "False"):  # ScalingLimited flips as samples cross the bound: the status does not
        hpa = {"metadata": {"name": "m"}, "status": {"desiredReplicas": 6, "currentReplicas": 6, "conditions": [
            {"type": "ScalingLimited", "status": limited, "reason": "TooManyReplicas", "message": "capped"}]}}
        seen.append(observe(hpa, bounds))
    assert seen[0] == seen[1]
    assert seen[0] is not None
    assert seen[0].at_limit == "maxReplicas"
    assert seen[0].problem is None
    low = observe({"metadata": {"name": "m"}, "status": {"desiredReplicas": 2}}, bounds)
    assert low is not None
    assert low.at_limit == "minReplicas"
