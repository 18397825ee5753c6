"""Status computed once per pass, kstatus style: Ready/Reconciling/Stalled/PackageValid/Available/RolledBack
for a serving model, a rollout in progress (pod problems within their grace period are progress, not a
stall), a stalled package (with the old revision still serving), a pending validation, a serving revision's
unschedulable pods, a progress deadline, an automatic rollback (rolling back, then serving the old revision
with RolledBack and Stalled naming the failed revision and its cause), a failed first revision;
lastTransitionTime moves only on a flip; an unchanged pass computes an equal status; events only on
transitions."""

from __future__ import annotations

from typing import Any

from mlmodel_operator.spec import MLModelStatus
from mlmodel_operator.status import (
    Failure,
    Observation,
    PassFacts,
    Revisions,
    compute_status,
    events_between,
    find,
)
from mlmodel_operator.workload import Problem

from tests.operator.factories import history_entry, package, record

T0 = "2026-11-22T10:00:00Z"
T1 = "2026-11-22T10:05:00Z"


def _obs(**kw: Any) -> Observation:
    base: dict[str, Any] = dict(exists=True, up_to_date=True, desired=2, replicas=2, updated=2, ready=2,
                                available=2, revision=1, minimum_available=True)
    return Observation(**{**base, **kw})


SERVING_1 = Revisions(history=(history_entry(1, "Serving"),), desired=1)


def _facts(**kw: Any) -> PassFacts:
    base: dict[str, Any] = dict(generation=1, desired_replicas=2, url="http://m.ns.svc.cluster.local:8080/v2/models/m",
                                selector="a=b", observation=_obs(), package=package(), applied_revision=1,
                                revisions=SERVING_1)
    return PassFacts(**{**base, **kw})


def _rolling(revision: int, serving: int | None = 1) -> Revisions:
    history = (history_entry(serving, "Serving"),) if serving else ()
    return Revisions(history=history, rollout=record(revision), desired=revision, in_rollout=True)


def _conds(status: MLModelStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_serving_model_is_ready() -> None:
    status = compute_status(MLModelStatus(), _facts(), T0)
    assert _conds(status) == {
        "Ready": ("True", "Serving"),
        "Reconciling": ("False", "Reconciled"),
        "Stalled": ("False", "Reconciled"),
        "PackageValid": ("True", "PackageVerified"),
        "Available": ("True", "MinimumReplicasAvailable"),
        "RolledBack": ("False", "NotRolledBack"),
    }
    assert status.observed_generation == 1
    assert all(c.observed_generation == 1 for c in status.conditions)
    assert status.revision == 1
    assert status.desired_revision == 1
    assert status.availability == "2/2"
    assert status.package == package()
    assert status.url
    assert status.selector


def test_unchanged_pass_gives_equal_status_and_keeps_transition_times() -> None:
    first = compute_status(MLModelStatus(), _facts(), T0)
    second = compute_status(first, _facts(), T1)
    assert second == first
    assert events_between(first, second) == []


def test_transition_time_moves_only_on_a_flip() -> None:
    first = compute_status(MLModelStatus(), _facts(), T0)
    rolling = compute_status(first, _facts(generation=2, observation=_obs(updated=1, revision=2),
                                           applied_revision=2, revisions=_rolling(2)), T1)
    ready = find(rolling.conditions, "Ready")
    available = find(rolling.conditions, "Available")
    assert ready is not None
    assert available is not None
    assert (ready.status, ready.last_transition_time) == ("False", T1)
    assert (available.status, available.last_transition_time) == ("True", T0)
    assert ready.observed_generation == 2


def test_rollout_in_progress_then_waiting_for_model() -> None:
    rolling = compute_status(MLModelStatus(revision=1), _facts(observation=_obs(updated=1, replicas=3, revision=2),
                                                              applied_revision=2, revisions=_rolling(2)), T0)
    assert _conds(rolling)["Reconciling"] == ("True", "RollingOut")
    assert _conds(rolling)["Ready"] == ("False", "RollingOut")
    assert rolling.revision == 1  # the old revision still serves
    assert rolling.desired_revision == 2
    assert rolling.rollout == record(2)
    # A pod of the new revision crash-looping, still within its threshold: progress, with the problem named.
    crashing = Problem("CrashLoopBackOff", "pod m-2-abc: container runtime CrashLoopBackOff")
    waiting = compute_status(rolling, _facts(observation=_obs(ready=0, available=0, revision=2, minimum_available=False,
                                                               problems=(crashing,)),
                                             applied_revision=2, revisions=_rolling(2)), T1)
    assert _conds(waiting)["Reconciling"] == ("True", "WaitingForModelReady")
    assert _conds(waiting)["Stalled"] == ("False", "Progressing")
    assert _conds(waiting)["Available"] == ("False", "MinimumReplicasUnavailable")
    reconciling = find(waiting.conditions, "Reconciling")
    assert reconciling is not None
    assert "pod m-2-abc: container runtime CrashLoopBackOff" in reconciling.message


def test_bad_package_stalls_and_keeps_the_serving_revision() -> None:
    serving = compute_status(MLModelStatus(), _facts(), T0)
    failure = Failure("DigestMismatch", "model.onnx: sha256 expected aa found bb")
    stalled = compute_status(serving, _facts(generation=2, package=None, failure=failure, applied_revision=None,
                                             revisions=Revisions(history=SERVING_1.history)), T1)
    assert _conds(stalled)["Stalled"] == ("True", "DigestMismatch")
    assert _conds(stalled)["Ready"] == ("False", "DigestMismatch")
    assert _conds(stalled)["PackageValid"] == ("False", "DigestMismatch")
    assert _conds(stalled)["Reconciling"][0] == "False"
    assert _conds(stalled)["Available"] == ("True", "MinimumReplicasAvailable")
    stalled_cond = find(stalled.conditions, "Stalled")
    assert stalled_cond is not None
    assert stalled_cond.message == failure.message
    assert stalled.revision == 1
    assert stalled.desired_revision == 1
    assert stalled.package == serving.package
    assert stalled.observed_generation == 2
    events = events_between(serving, stalled)
    assert [(e.type, e.reason) for e in events] == [("Warning", "DigestMismatch")]
    # The same failure again: no new event, no change.
    again = compute_status(stalled, _facts(generation=2, package=None, failure=failure, applied_revision=None,
                                           revisions=Revisions(history=SERVING_1.history)), T1)
    assert again == stalled
    assert events_between(stalled, again) == []


def test_placement_failure_keeps_package_valid() -> None:
    status = compute_status(MLModelStatus(), _facts(failure=Failure("UnknownNodePool", "no pool 'tpu'"),
                                                    applied_revision=None, observation=Observation(),
                                                    revisions=Revisions()), T0)
    assert _conds(status)["Stalled"] == ("True", "UnknownNodePool")
    assert _conds(status)["PackageValid"] == ("True", "PackageVerified")
    assert _conds(status)["Available"] == ("False", "NotDeployed")
    assert status.revision is None


def test_pending_validation_is_reconciling() -> None:
    status = compute_status(MLModelStatus(), _facts(package=None, pending="store unreachable", applied_revision=None,
                                                    observation=Observation(), revisions=Revisions()), T0)
    assert _conds(status)["Reconciling"] == ("True", "ValidatingPackage")
    assert _conds(status)["PackageValid"] == ("Unknown", "ValidatingPackage")
    assert _conds(status)["Stalled"][0] == "False"


def test_unschedulable_pods_of_the_serving_revision_stall_with_the_scheduler_message() -> None:
    problem = Problem("Unschedulable", "pod m-abc: 0/3 nodes are available: 2 Insufficient nvidia.com/gpu.")
    status = compute_status(MLModelStatus(), _facts(observation=_obs(available=0, ready=0, minimum_available=False,
                                                                     problems=(problem,))), T0)
    stalled = find(status.conditions, "Stalled")
    assert stalled is not None
    assert (stalled.status, stalled.reason) == ("True", "Unschedulable")
    assert "Insufficient nvidia.com/gpu" in stalled.message
    assert "m-abc" in stalled.message
    assert _conds(status)["Ready"] == ("False", "Unschedulable")


def test_progress_deadline_stalls() -> None:
    status = compute_status(MLModelStatus(), _facts(observation=_obs(available=0, minimum_available=False,
                                                                     deadline_exceeded="ReplicaSet x timed out")), T0)
    assert _conds(status)["Stalled"] == ("True", "ProgressDeadlineExceeded")


def test_ready_event_and_rollout_event() -> None:
    first = compute_status(MLModelStatus(), _facts(observation=_obs(available=0, ready=0, minimum_available=False),
                                                   revisions=_rolling(1, serving=None)), T0)
    assert [(e.type, e.reason) for e in events_between(MLModelStatus(), first)] == [("Normal", "RolloutStarted")]
    ready = compute_status(first, _facts(), T1)
    assert [(e.type, e.reason) for e in events_between(first, ready)] == [("Normal", "Ready")]


def test_automatic_rollback_then_the_old_revision_serves() -> None:
    rolling = compute_status(MLModelStatus(), _facts(observation=_obs(updated=1, available=1, revision=2),
                                                     applied_revision=2, revisions=_rolling(2)), T0)
    crash = Failure("CrashLoop", "pod m-2-abc: container runtime restarted 3 times, last exit code 1 (Error)")
    history = (history_entry(1, "Serving"), history_entry(2, "Failed", crash.reason, crash.message))
    rolled = Revisions(history=history, desired=2, failed_revision=2, rolled_back=crash)
    # The rollback is applied: the Deployment's template is revision 1 again, not yet complete.
    back = compute_status(rolling, _facts(observation=_obs(up_to_date=False, updated=1, available=1, revision=1),
                                          applied_revision=1, revisions=rolled), T1)
    assert _conds(back) == {
        "Ready": ("False", "RollingBack"),
        "Reconciling": ("True", "RollingBack"),
        "Stalled": ("True", "RolledBack"),
        "PackageValid": ("True", "PackageVerified"),
        "Available": ("True", "MinimumReplicasAvailable"),
        "RolledBack": ("True", "CrashLoop"),
    }
    stalled = find(back.conditions, "Stalled")
    assert stalled is not None
    assert "revision 2 failed (CrashLoop: pod m-2-abc" in stalled.message
    assert "rolled back to revision 1" in stalled.message
    assert "serving.mlmodel.io/retry" in stalled.message
    assert (back.revision, back.desired_revision) == (1, 2)
    assert [(e.type, e.reason) for e in events_between(rolling, back)] == [("Warning", "RolledBack")]
    # Revision 1's ReplicaSet is back at full strength: Ready, not Reconciling, still Stalled and RolledBack.
    served = compute_status(back, _facts(applied_revision=1, revisions=rolled), T1)
    assert _conds(served)["Ready"] == ("True", "Serving")
    assert _conds(served)["Reconciling"] == ("False", "RolledBack")
    assert _conds(served)["Stalled"] == ("True", "RolledBack")
    assert _conds(served)["RolledBack"] == ("True", "CrashLoop")
    assert [e.reason for e in events_between(back, served)] == ["Ready"]
    assert compute_status(served, _facts(applied_revision=1, revisions=rolled), T1) == served


def test_failed_first_revision_is_stalled_not_ready() -> None:
    never = Failure("NeverReady", "pod m-1-abc has been running, model loaded, but not ready for 130s")
    failed = Revisions(history=(history_entry(1, "Failed", never.reason, never.message),), desired=1,
                       failed_revision=1, failed=never)
    status = compute_status(MLModelStatus(), _facts(observation=_obs(ready=0, available=0, minimum_available=False),
                                                    revisions=failed), T0)
    assert _conds(status)["Ready"] == ("False", "NeverReady")
    assert _conds(status)["Stalled"] == ("True", "NeverReady")
    assert _conds(status)["Reconciling"] == ("False", "Stalled")
    assert _conds(status)["RolledBack"] == ("False", "NotRolledBack")
    stalled = find(status.conditions, "Stalled")
    assert stalled is not None
    assert "no earlier revision served to roll back to" in stalled.message
    assert status.revision is None
    off = compute_status(MLModelStatus(), _facts(revisions=Revisions(
        history=failed.history, desired=1, failed_revision=1, failed=never, auto_rollback=False)), T0)
    off_stalled = find(off.conditions, "Stalled")
    assert off_stalled is not None
    assert "autoRollback is off" in off_stalled.message
