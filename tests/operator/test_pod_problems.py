"""Observation of the runtime's objects: rollout completeness, pods that cannot be scheduled or crash-loop
(with the runtime's exit codes named), problems of older revisions ignored, and the Deployment's progress deadline."""

from __future__ import annotations

from typing import Any

from mlmodel_operator import names
from mlmodel_operator.status import observe
from mlmodel_operator.workload import Pod, Problem
from mlmodel_operator.workload import pod_problem as diagnose


def pod_problem(raw: dict[str, Any]) -> Problem | None:
    return diagnose(Pod.of(raw))


def _pod(name: str, revision: int, status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {names.REVISION_LABEL: str(revision)}}, "status": status}


def _deployment(revision: int, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"generation": 2},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {names.REVISION_LABEL: str(revision)}}}},
        "status": {"observedGeneration": 2, **status},
    }


UNSCHEDULABLE = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                 "reason": "Unschedulable", "message": "0/3 nodes are available: 2 Insufficient nvidia.com/gpu."}]}


def _crashing(exit_code: int | None) -> dict[str, Any]:
    last = {"terminated": {"exitCode": exit_code, "reason": "Error"}} if exit_code is not None else {}
    return {"containerStatuses": [{"name": "runtime", "restartCount": 4, "lastState": last, "state": {
        "waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}}}]}


def test_unschedulable_pod() -> None:
    problem = pod_problem(_pod("m-1", 1, UNSCHEDULABLE))
    assert problem is not None
    assert problem.reason == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in problem.message


def test_crashloop_names_the_runtime_exit_code() -> None:
    problem = pod_problem(_pod("m-1", 1, _crashing(13)))
    assert problem is not None
    assert problem.reason == "CrashLoopBackOff"
    assert "code 13 (DigestMismatch)" in problem.message
    other = pod_problem(_pod("m-1", 1, _crashing(1)))
    assert other is not None
    assert "last exit code 1" in other.message
    # The kubelet's back-off message grows with each restart: it must not make the status churn.
    bare = pod_problem(_pod("m-1", 1, _crashing(None)))
    assert bare is not None
    assert "back-off" not in bare.message


def test_healthy_pod_has_no_problem() -> None:
    running = {"phase": "Running", "containerStatuses": [{"name": "runtime", "state": {"running": {}}}]}
    assert pod_problem(_pod("m-1", 1, running)) is None


def test_only_the_current_revision_counts() -> None:
    pods = [_pod("old", 1, _crashing(1)), _pod("new", 2, UNSCHEDULABLE)]
    obs = observe(_deployment(2, replicas=2), pods)
    assert [p.message.split(":")[0] for p in obs.problems] == ["pod new"]
    obs_old_only = observe(_deployment(2), [_pod("old", 1, _crashing(1))])
    assert obs_old_only.problems == ()


def test_rollout_completeness() -> None:
    done = observe(_deployment(2, replicas=2, updatedReplicas=2, readyReplicas=2, availableReplicas=2), [])
    assert done.complete
    assert done.revision == 2
    old_left = observe(_deployment(2, replicas=3, updatedReplicas=2, availableReplicas=3), [])
    assert not old_left.complete
    stale = _deployment(2, replicas=2, updatedReplicas=2, availableReplicas=2)
    stale["status"]["observedGeneration"] = 1
    assert not observe(stale, []).complete
    assert not observe(None, []).exists


def test_progress_deadline() -> None:
    dep = _deployment(2, conditions=[
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
         "message": 'ReplicaSet "m-2" has timed out progressing.'},
        {"type": "Available", "status": "True"},
    ])
    obs = observe(dep, [])
    assert obs.deadline_exceeded is not None
    assert "timed out" in obs.deadline_exceeded
    assert obs.minimum_available


def test_the_exit_code_table_matches_the_runtime() -> None:
    """The operator's reading of the runtime's exit codes is the runtime's own: every package error's code is
    known with its class's reason (several classes may share a code), and the temporary one is the store's."""
    from mlmodel_runtime.package import errors

    def subclasses(cls: type[errors.PackageError]) -> list[type[errors.PackageError]]:
        return [c for sub in cls.__subclasses__() for c in (sub, *subclasses(sub))]

    classes = [c for c in subclasses(errors.PackageError) if c.exit_code >= 10]
    assert {c.exit_code for c in classes} == set(names.RUNTIME_EXIT_REASONS)
    assert {names.RUNTIME_EXIT_REASONS[c.exit_code] for c in classes} <= {c.reason for c in classes}
    assert {c.exit_code for c in classes if c.temporary} == set(names.TEMPORARY_EXIT_CODES)
