"""The Reconciler against a fake Kubernetes API and a fake package store (tests/operator/fakeapi.py), in
milliseconds: a first rollout and Ready; a steady model writes nothing; a crash-looping revision is recorded as
Failed in status *before* the rollback is applied (the write-ahead), rolled back, and never retried, also by an
operator that starts again; without autoRollback it stays Failed; the retry annotation tries it once more; a bad
package or an unreachable store leaves the serving Deployment alone; kopf's annotation patches between a pass's
read and its status write do not hold the status back; the counters of a rollback."""

from __future__ import annotations

import pytest
from mlmodel_operator.metrics import OperatorMetrics
from mlmodel_operator.pass_plan import World, make_plan
from mlmodel_operator.reconcile import RetryLater
from mlmodel_runtime.package.errors import DigestMismatch, StoreUnavailable
from prometheus_client import CollectorRegistry

from tests.operator.fakeapi import NS, Cluster, Killed, Write

pytestmark = pytest.mark.fake_api

V1 = "s3://models/m/1/"
V2 = "s3://models/m/2/"


def _serving(world: Cluster, replicas: int = 2) -> None:
    """Model m serves revision 1 (a first rollout, completed)."""
    world.secret()
    world.packages.add(V1, "sha256:" + "01" * 32)
    world.packages.add(V2, "sha256:" + "02" * 32)
    world.create("m", V1, replicas=replicas)
    op = world.reconciler()
    op.reconcile(NS, "m")
    world.roll_out("m")
    op.reconcile(NS, "m")


def _crash_looping_revision_2(world: Cluster, **rollout: object) -> None:
    """Revision 2 is applied and its pods crash-loop (restarted past the limit)."""
    if rollout:
        world.edit("m", {"rollout": rollout})
    world.edit("m", {"source": {"uri": V2}})
    world.reconciler().reconcile(NS, "m")
    assert world.revision("m") == 2
    world.crash_loop("m", restarts=3)
    world.clock.advance(5)


def test_first_rollout_then_ready() -> None:
    world = Cluster()
    world.secret()
    world.packages.add(V1, "sha256:" + "01" * 32)
    world.create("m", V1, replicas=2)
    op = world.reconciler()

    first = op.reconcile(NS, "m")
    assert first is not None
    assert not first.ready
    assert first.stalled is None
    assert [str(w) for w in world.kube.writes] == [
        "apply deployments m", "apply services m", "create events RolloutStarted", "patch mlmodels/status m"]
    assert world.status("m")["rollout"]["revision"] == 1
    assert world.conditions("m")["Reconciling"] == ("True", "RollingOut")

    world.roll_out("m")
    done = op.reconcile(NS, "m")
    assert done is not None
    assert done.ready
    assert world.history("m") == [(1, "Serving")]
    assert "rollout" not in world.status("m")
    assert world.conditions("m")["Ready"] == ("True", "Serving")
    assert world.kube.event_reasons() == ["RolloutStarted", "Ready"]


def test_a_steady_model_writes_nothing() -> None:
    world = Cluster()
    _serving(world)
    writes, checks = len(world.kube.writes), len(world.packages.checks)
    op = world.reconciler()  # a restarted operator too: nothing in memory
    for _ in range(5):
        world.clock.advance(60)
        result = op.reconcile(NS, "m")
        assert result is not None
        assert result.ready
    assert world.kube.writes[writes:] == []
    assert len(world.packages.checks) == checks + 5  # validated each pass, recognized by its digest


def test_a_failed_revision_is_written_ahead_of_the_rollback() -> None:
    world = Cluster()
    _serving(world)
    _crash_looping_revision_2(world)
    before = len(world.kube.writes)

    # Stopped right after the write-ahead: the failure is in status, the Deployment still at revision 2.
    with pytest.raises(Killed):
        world.reconciler(fault="failure-recorded").reconcile(NS, "m")
    assert world.history("m") == [(1, "Serving"), (2, "Failed")]
    assert world.conditions("m")["Stalled"] == ("True", "RolledBack")
    assert world.revision("m") == 2
    assert [str(w) for w in world.kube.writes[before:]] == ["create events RolledBack", "patch mlmodels/status m"]

    # The operator starts again: it rolls back (once), and never tries revision 2 again.
    op = world.reconciler()
    op.reconcile(NS, "m")
    assert world.revision("m") == 1
    world.roll_out("m")
    for _ in range(3):
        world.clock.advance(5)
        op.reconcile(NS, "m")
    applies = [w for w in world.kube.writes[before:] if w.resource == "deployments"]
    assert applies == [Write("apply", "deployments", "m")]
    assert world.history("m") == [(1, "Serving"), (2, "Failed")]
    assert world.conditions("m")["Ready"] == ("True", "Serving")
    assert world.conditions("m")["RolledBack"] == ("True", "CrashLoop")
    assert world.kube.event_reasons("Warning") == ["RolledBack"]


def test_the_write_ahead_is_in_the_plan_and_comes_first() -> None:
    world = Cluster()
    _serving(world)
    _crash_looping_revision_2(world)
    op = world.reconciler()
    read = op.read(NS, "m")
    assert read is not None
    planned = make_plan(read, op.validate(read.model), world.config, world.clock())
    assert planned.write_ahead is not None
    assert [(e.revision, e.outcome) for e in planned.write_ahead.status.history] == [(1, "Serving"), (2, "Failed")]
    assert [e.reason for e in planned.write_ahead.events] == ["RolledBack"]
    assert planned.transition.rolled_back
    assert planned.deployment_revision == 1

    before = len(world.kube.writes)
    op.act(planned)
    assert [str(w) for w in world.kube.writes[before:]] == [
        "create events RolledBack", "patch mlmodels/status m",  # the write-ahead
        "apply deployments m",  # the rollback; the status after it is the one written ahead (RollingBack)
    ]
    assert world.revision("m") == 1


def test_without_auto_rollback_the_failed_revision_stays() -> None:
    world = Cluster()
    _serving(world)
    _crash_looping_revision_2(world, autoRollback=False)
    before = len(world.kube.writes)
    result = world.reconciler().reconcile(NS, "m")
    assert result is not None
    assert result.stalled is not None
    assert result.stalled.reason == "CrashLoop"
    assert world.revision("m") == 2
    assert not [w for w in world.kube.writes[before:] if w.resource == "deployments"]
    assert world.history("m") == [(1, "Serving"), (2, "Failed")]
    assert world.conditions("m")["Stalled"] == ("True", "CrashLoop")


def test_the_retry_annotation_tries_a_failed_revision_once_more() -> None:
    world = Cluster()
    _serving(world)
    _crash_looping_revision_2(world)
    op = world.reconciler()
    op.reconcile(NS, "m")
    world.roll_out("m")
    op.reconcile(NS, "m")
    assert world.revision("m") == 1

    world.edit("m", annotations={"serving.mlmodel.io/retry": "1"})
    op.reconcile(NS, "m")
    assert world.revision("m") == 2
    assert world.status("m")["lastRetry"] == "1"
    world.roll_out("m")
    op.reconcile(NS, "m")
    assert world.history("m") == [(1, "Superseded"), (2, "Serving")]
    op.reconcile(NS, "m")  # the same annotation value: nothing more
    assert world.revision("m") == 2


def test_a_bad_package_leaves_the_serving_deployment_alone() -> None:
    world = Cluster()
    _serving(world)
    world.packages.table[V2] = DigestMismatch("model.onnx", "sha256:" + "aa" * 32, "sha256:" + "bb" * 32)
    world.edit("m", {"source": {"uri": V2}})
    before = len(world.kube.writes)
    result = world.reconciler().reconcile(NS, "m")
    assert result is not None
    assert result.stalled is not None
    assert result.stalled.reason == "DigestMismatch"
    assert [str(w) for w in world.kube.writes[before:]] == ["create events DigestMismatch", "patch mlmodels/status m"]
    assert world.revision("m") == 1
    assert world.conditions("m")["PackageValid"] == ("False", "DigestMismatch")


def test_an_unreachable_store_retries_and_applies_nothing() -> None:
    world = Cluster()
    _serving(world)
    world.packages.table[V2] = StoreUnavailable("connection refused")
    world.edit("m", {"source": {"uri": V2}})
    before = len(world.kube.writes)
    with pytest.raises(RetryLater):
        world.reconciler().reconcile(NS, "m")
    assert not [w for w in world.kube.writes[before:] if w.resource in ("deployments", "services")]
    assert world.conditions("m")["Reconciling"] == ("True", "ValidatingPackage")
    assert world.revision("m") == 1


def test_a_status_decided_from_an_old_read_is_refused_and_decided_again() -> None:
    world = Cluster()
    _serving(world)
    _crash_looping_revision_2(world)
    op = world.reconciler()
    read = op.read
    writers = ["another writer"]

    def read_then_another_writer(namespace: str, name: str) -> World | None:
        snapshot = read(namespace, name)
        if writers:  # between the pass's first read and its status write
            world.edit("m", annotations={"written-by": writers.pop()})
        return snapshot

    op.read = read_then_another_writer  # type: ignore[method-assign]
    before = len(world.kube.writes)
    op.reconcile(NS, "m")
    writes = [str(w) for w in world.kube.writes[before:]]
    assert writes.count("create events RolledBack") == 1, writes  # posted once
    assert "apply deployments m" in writes
    assert world.history("m") == [(1, "Serving"), (2, "Failed")]
    assert world.kube.event_reasons("Warning") == ["RolledBack"]


def test_a_model_whose_annotations_keep_changing_still_gets_its_status() -> None:
    world = Cluster()
    _serving(world)
    _crash_looping_revision_2(world)
    op = world.reconciler()
    read = op.read

    def read_then_another_writer(namespace: str, name: str) -> World | None:
        snapshot = read(namespace, name)
        world.edit("m", annotations={"written-at": world.clock.stamp()})
        world.clock.advance(1)
        return snapshot

    op.read = read_then_another_writer  # type: ignore[method-assign]
    op.reconcile(NS, "m")  # kopf's annotation patches between the read and the write do not hold it back
    assert world.history("m") == [(1, "Serving"), (2, "Failed")]
    assert world.revision("m") == 1  # rolled back


def test_a_rollback_is_counted() -> None:
    world = Cluster()
    metrics = OperatorMetrics(CollectorRegistry())
    _serving(world)
    _crash_looping_revision_2(world)
    op = world.reconciler(metrics=metrics)
    op.reconcile(NS, "m")
    world.roll_out("m")
    op.reconcile(NS, "m")
    sample = metrics.registry.get_sample_value
    assert sample("mlmodel_operator_rollbacks_total", {"namespace": NS, "name": "m", "reason": "CrashLoop"}) == 1
    assert sample("mlmodel_operator_rollouts_total", {"result": "rolled_back"}) == 1
    assert sample("mlmodel_operator_rollouts_total", {"result": "succeeded"}) is None  # revision 1 served before
    assert sample("mlmodel_operator_model_serving_revision_info",
                  {"namespace": NS, "name": "m", "revision": "1", "digest": "sha256:" + "01" * 32}) == 1
    assert sample("mlmodel_operator_model_condition",
                  {"namespace": NS, "name": "m", "condition": "RolledBack", "status": "True"}) == 1
    assert sample("mlmodel_operator_reconcile_total", {"outcome": "stalled"}) == 1  # rolling back
    assert sample("mlmodel_operator_reconcile_total", {"outcome": "ready"}) == 1  # revision 1 serves again
