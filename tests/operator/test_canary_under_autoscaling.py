"""A canary of an autoscaled model, in reconcile passes against the fake API: the HPA keeps writing spec.replicas
through the scale subresource while the canary runs, and
- a replica change is not a new revision: the canary stays at its step (no start over), and the split follows
  the HPA's count within the GPU budget (spec.replicas + maxExtraReplicas);
- a promotion ends with the new revision on the replicas the HPA asked for;
- an abort gives the stable revision the HPA's replicas back, never fewer."""

from __future__ import annotations

from typing import Any

from mlmodel_operator.canary.rollout import split

from tests.operator.fakeapi import NS, Cluster
from tests.operator.test_canary_passes import V1, V2, Traffic, _canary, _canary_status, _window

AUTO: dict[str, Any] = {"minReplicas": 2, "maxReplicas": 8, "target": {"metric": "InFlightRequests", "averageValue": 4}}



def _replicas(world: Cluster, name: str) -> int:
    return int(world.deployment(name)["spec"]["replicas"])


def _autoscaled_canary() -> tuple[Cluster, Any, Traffic]:
    """Revision 1 serving on the 4 replicas the HPA asked for, then revision 2 as a canary at its first step."""
    world = Cluster()
    world.secret()
    world.packages.add(V1, "sha256:" + "01" * 32)
    world.packages.add(V2, "sha256:" + "02" * 32)
    world.create("m", V1, autoscaling=AUTO, rollout=_canary())
    op = world.reconciler()
    op.reconcile(NS, "m")
    assert world.kube.model(NS, "m")["spec"]["replicas"] == 2  # set once, to minReplicas
    world.roll_out("m")
    world.hpa_scales("m", 4)
    op.reconcile(NS, "m")
    world.roll_out("m")
    op.reconcile(NS, "m")
    assert _replicas(world, "m") == 4
    world.edit("m", {"source": {"uri": V2}})
    op.reconcile(NS, "m")
    world.roll_out("m-canary")
    traffic = Traffic(world)
    traffic.serve(1, 0)
    assert (_replicas(world, "m"), _replicas(world, "m-canary")) == split(4, 25, 1) == (4, 1)
    return world, op, traffic


def test_the_split_follows_the_hpa_and_the_canary_keeps_its_step() -> None:
    world, op, traffic = _autoscaled_canary()
    _window(world, op, traffic)  # step 1 passes: 50%
    assert (_canary_status(world)["step"], _canary_status(world)["weight"]) == (2, 50)
    assert (_replicas(world, "m"), _replicas(world, "m-canary")) == split(4, 50, 1) == (3, 2)

    started = world.kube.event_reasons("Normal").count("CanaryStarted")
    world.hpa_scales("m", 8)  # load grows during the canary
    op.reconcile(NS, "m")
    canary = _canary_status(world)
    # A replica count is not a revision: the same canary at the same step, not started over.
    assert (canary["revision"], canary["phase"], canary["step"]) == (2, "Progressing", 2)
    assert world.kube.event_reasons("Normal").count("CanaryStarted") == started
    stable, candidate = _replicas(world, "m"), _replicas(world, "m-canary")
    assert (stable, candidate) == split(8, 50, 1) == (5, 4)
    assert stable + candidate <= 8 + 1  # the GPU budget holds at the HPA's count
    assert world.kube.model(NS, "m")["spec"]["replicas"] == 8  # the operator never writes the HPA's field

    world.roll_out("m")
    world.roll_out("m-canary")
    _window(world, op, traffic)  # the last step passes: promoted
    world.roll_out("m")
    op.reconcile(NS, "m")
    world.roll_out("m")
    op.reconcile(NS, "m")
    assert world.kube.get("deployments", NS, "m-canary") is None
    assert _canary_status(world)["phase"] == "Promoted"
    assert world.revision("m") == 2
    assert _replicas(world, "m") == 8  # the new revision on the replicas the HPA asked for


def test_an_abort_gives_the_stable_revision_the_hpas_replicas() -> None:
    world, op, traffic = _autoscaled_canary()
    world.hpa_scales("m", 6)
    op.reconcile(NS, "m")
    assert (_replicas(world, "m"), _replicas(world, "m-canary")) == split(6, 25, 1) == (5, 2)
    world.roll_out("m")
    world.roll_out("m-canary")
    _window(world, op, traffic, candidate_ok=10, candidate_failed=10)
    assert _canary_status(world)["phase"] == "Aborted"
    assert world.kube.get("deployments", NS, "m-canary") is None
    assert world.revision("m") == 1
    assert _replicas(world, "m") == 6
    assert world.kube.model(NS, "m")["spec"]["replicas"] == 6
