"""An operator killed at any fault point, any time it reaches it, in a rollout that fails and is rolled back,
ends (once started again) where an operator that never died ends: the same history, conditions and serving
revision, and every event posted exactly once. In particular a kill between posting a transition's events and
writing the status that records it (`warning-posted`) neither loses the RolledBack warning nor posts it twice:
events are posted first, under names derived from the transition, and the restarted operator's same transition
gets the same names. The fake API (tests/operator/fakeapi.py) runs the whole table in well under a second."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from mlmodel_operator.faults import POINTS
from mlmodel_operator.reconcile import Reconciler

from tests.operator.fakeapi import NS, Cluster, Killed

pytestmark = pytest.mark.fake_api

V1 = "s3://models/m/1/"
V2 = "s3://models/m/2/"
# The real validator reaches `validating`; the fake one hashes nothing.
KILL_POINTS = sorted(POINTS - {"validating"})


class Operator:
    """The operator process: killed at `fault` (once), it is started again (a fresh Reconciler)."""

    def __init__(self, world: Cluster, fault: str | None) -> None:
        self.world = world
        self.current: Reconciler = world.reconciler(fault=fault)
        self.kills = 0

    def pass_(self) -> None:
        try:
            self.current.reconcile(NS, "m")
        except Killed:
            self.kills += 1
            self.current = self.world.reconciler()
            self.current.reconcile(NS, "m")


def _run(fault: str | None) -> tuple[dict[str, Any], int]:
    world = Cluster()
    world.secret()
    world.packages.add(V1, "sha256:" + "01" * 32)
    world.packages.add(V2, "sha256:" + "02" * 32)
    operator = Operator(world, fault)
    world.create("m", V1, replicas=2)
    operator.pass_()
    world.roll_out("m")
    operator.pass_()
    world.edit("m", {"source": {"uri": V2}})
    operator.pass_()
    world.crash_loop("m", restarts=3)
    world.clock.advance(5)
    operator.pass_()
    world.roll_out("m")
    for _ in range(3):
        world.clock.advance(5)
        operator.pass_()
    status = world.status("m")
    end = {
        "history": world.history("m"),
        "conditions": world.conditions("m"),
        "revision": (status.get("revision"), status.get("desiredRevision"), status.get("rollout")),
        "deployment": world.revision("m"),
        "events": Counter((e["type"], e["reason"]) for e in world.kube.events.values()),
    }
    return end, operator.kills


def test_an_operator_that_never_dies() -> None:
    end, kills = _run(None)
    assert kills == 0
    assert end["history"] == [(1, "Serving"), (2, "Failed")]
    assert end["deployment"] == 1
    assert end["events"] == Counter({("Normal", "RolloutStarted"): 2, ("Normal", "Ready"): 2,
                                     ("Warning", "RolledBack"): 1})


@pytest.mark.parametrize("fault", [f"{point}:{n}" for point in KILL_POINTS for n in (1, 2, 3)])
def test_killed_at_a_fault_point_ends_the_same(fault: str) -> None:
    expected, _ = _run(None)
    end, _kills = _run(fault)
    assert end == expected


@pytest.mark.parametrize("point", KILL_POINTS)
def test_every_point_is_reached_in_this_rollout(point: str) -> None:
    _, kills = _run(point)
    assert kills == 1, f"{point} was never reached: the table above would not test it"


def test_a_kill_after_the_warning_neither_loses_nor_doubles_it() -> None:
    end, kills = _run("warning-posted")
    assert kills == 1
    assert end["events"][("Warning", "RolledBack")] == 1
