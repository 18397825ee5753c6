"""Objects the operator would create under a name something else already holds (a user's own Deployment or
Service named like the model, another model's canary Deployment `<model>-canary`) are never taken over: the pass
applies nothing of the model, says why in status (Stalled=True, reason NameConflict) and in an event, and carries
on by itself once the name is free. Fake API (tests/operator/fakeapi.py)."""

from __future__ import annotations

from typing import Any

from tests.operator.fakeapi import NS, Cluster
from tests.operator.test_canary_passes import SHADOW, V1, V2, _canary, _serving, _start_canary


def _deployment(name: str, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NS, "labels": {"app": "theirs"}}
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "theirs"}},
                     "template": {"metadata": {"labels": {"app": "theirs"}}, "spec": {"containers": []}}}}


def _world() -> Cluster:
    world = Cluster()
    world.secret()
    world.packages.add(V1, "sha256:" + "01" * 32)
    world.packages.add(V2, "sha256:" + "02" * 32)
    return world


def test_a_users_deployment_of_the_same_name_is_not_taken_over() -> None:
    world = _world()
    theirs = world.kube.put("deployments", _deployment("m"))
    world.create("m", V1, replicas=1)
    op = world.reconciler()
    op.reconcile(NS, "m")
    assert world.deployment("m")["metadata"]["labels"] == {"app": "theirs"}  # untouched
    assert world.deployment("m")["metadata"]["resourceVersion"] == theirs["metadata"]["resourceVersion"]
    assert not [w for w in world.kube.writes if w.resource in ("deployments", "services")]
    conditions = world.conditions("m")
    assert conditions["Stalled"] == ("True", "NameConflict")
    assert conditions["Ready"][0] == "False"
    message = next(c["message"] for c in world.status("m")["conditions"] if c["type"] == "Stalled")
    assert "Deployment m exists and is not controlled by it" in message, message
    assert "NameConflict" in world.kube.event_reasons("Warning")

    before = len(world.kube.writes)
    op.reconcile(NS, "m")
    assert len(world.kube.writes) == before  # a steady conflict writes nothing more

    del world.kube.objects[("deployments", NS, "m")]  # the user frees the name
    op.reconcile(NS, "m")
    assert world.deployment("m")["metadata"]["ownerReferences"][0]["kind"] == "MLModel"
    world.roll_out("m")
    op.reconcile(NS, "m")
    assert world.conditions("m")["Ready"] == ("True", "Serving")


def test_another_models_canary_deployment_is_not_taken_over() -> None:
    """Model `m-canary`'s own Deployment holds the name model `m`'s canary needs: `m` keeps serving its stable
    revision and says why its canary cannot start; `m-canary` is untouched."""
    world = _world()
    world.create("m-canary", V1, replicas=1)
    world.create("m", V1, replicas=2, rollout=_canary())
    op = world.reconciler()
    for name in ("m-canary", "m"):
        op.reconcile(NS, name)
        world.roll_out(name)
        op.reconcile(NS, name)
    other = world.deployment("m-canary")
    world.edit("m", {"source": {"uri": V2}})
    op.reconcile(NS, "m")
    assert world.deployment("m-canary")["metadata"]["resourceVersion"] == other["metadata"]["resourceVersion"]
    assert world.revision("m") == 1
    assert world.deployment("m")["spec"]["replicas"] == 2
    conditions = world.conditions("m")
    assert conditions["Stalled"] == ("True", "NameConflict"), conditions
    message = next(c["message"] for c in world.status("m")["conditions"] if c["type"] == "Stalled")
    assert "Deployment m-canary exists and is controlled by MLModel m-canary" in message, message
    assert conditions["Available"][0] == "True"  # revision 1 serves on (Ready=False as for any spec it cannot serve)
    assert world.conditions("m-canary")["Ready"] == ("True", "Serving")


def test_objects_left_by_an_earlier_model_of_the_same_name_are_taken_over() -> None:
    """Deleted and created again before the garbage collector removed its Deployment: that one is the model's."""
    world = _world()
    earlier = {"apiVersion": "serving.mlmodel.io/v1alpha1", "kind": "MLModel", "name": "m", "uid": "earlier-uid",
               "controller": True, "blockOwnerDeletion": True}
    world.kube.put("deployments", _deployment("m", owner=earlier))
    world.create("m", V1, replicas=1)
    op = world.reconciler()
    op.reconcile(NS, "m")
    assert world.deployment("m")["metadata"]["labels"]["app.kubernetes.io/instance"] == "m"
    assert world.conditions("m")["Stalled"][0] == "False"


def test_a_users_configmap_under_the_shadow_name_is_left_alone() -> None:
    """A shadow canary needs ConfigMap `<model>-shadow`; a user's own of that name is neither written nor deleted
    when the canary ends, and the model says why."""
    rollout = _canary({"weight": 0}, maxDisagreement=0.05)
    rollout["canary"]["shadow"] = SHADOW
    world, op = _serving(replicas=2, **rollout)
    theirs = world.kube.put("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                           "metadata": {"name": "m-shadow", "namespace": NS},
                                           "data": {"theirs": "yes"}})
    _start_canary(world, op)
    op.reconcile(NS, "m")  # the candidate's Service has its ClusterIP: the shadow settings are due
    assert world.kube.get("configmaps", NS, "m-shadow") == theirs
    conditions = world.conditions("m")
    assert conditions["Stalled"] == ("True", "NameConflict"), conditions
    message = next(c["message"] for c in world.status("m")["conditions"] if c["type"] == "Stalled")
    assert "ConfigMap m-shadow exists and is not controlled by it" in message, message

    world.edit("m", {"source": {"uri": V1}})  # back to the serving revision: the canary ends
    op.reconcile(NS, "m")
    assert world.kube.get("configmaps", NS, "m-shadow") == theirs  # not deleted with the canary's objects
