"""Evidence that a revision being rolled out failed (plan.evidence, pure, the clock as an argument), as a table:
unschedulable within and beyond its grace period; restarts below and at the crash-loop threshold; a runtime
package exit code (fails at the first restart); a container not started after its startup probe's budget, or
stopped after running for the whole budget (not after serving for an hour); running but never ready, within
and beyond the limit; image pull errors that last; the Deployment's progress deadline; pods of other revisions
and pods being deleted ignored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mlmodel_operator import names
from mlmodel_operator.plan import Limits, revision_failure
from mlmodel_operator.workload import Problem

NOW = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
LIMITS = Limits(crash_loop_restarts=3, never_ready_seconds=60, unschedulable_seconds=30, startup_grace_seconds=10,
                stuck_seconds=120)
STARTUP_PROBE = {"periodSeconds": 5, "failureThreshold": 12}  # a 60 s budget


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(status: dict[str, Any], revision: int = 2, age: float = 600, name: str = "m-2-abc",
        deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "creationTimestamp": ago(age),
                            "labels": {names.REVISION_LABEL: str(revision)}}
    if deleting:
        meta["deletionTimestamp"] = ago(0)
    return {"metadata": meta, "spec": {"containers": [{"name": "runtime", "startupProbe": STARTUP_PROBE}]},
            "status": status}


def unschedulable(since: float) -> dict[str, Any]:
    return {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                                "lastTransitionTime": ago(since),
                                                "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]}


def container(restarts: int = 0, state: dict[str, Any] | None = None, last: dict[str, Any] | None = None,
              started: bool = False, ready_since: float | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running", "containerStatuses": [{
        "name": "runtime", "restartCount": restarts, "started": started, "ready": False,
        "state": state or {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": last} if last else {},
    }]}
    if ready_since is not None:
        status["conditions"] = [{"type": "Ready", "status": "False", "lastTransitionTime": ago(ready_since)}]
    return status


def crashed(code: int, ran: float = 0) -> dict[str, Any]:
    return {"exitCode": code, "reason": "Error", "startedAt": ago(ran + 1), "finishedAt": ago(1)}


DEADLINE = {"status": {"conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                       "message": 'ReplicaSet "m-2" has timed out progressing.'}]}}

# case -> (pods, deployment, expected reason or None, a fragment of the message)
CASES: dict[str, tuple[list[dict[str, Any]], dict[str, Any] | None, str | None, str]] = {
    "unschedulable within grace": ([pod(unschedulable(20))], None, None, ""),
    "unschedulable beyond grace": ([pod(unschedulable(40))], None, "Unschedulable", "Insufficient nvidia.com/gpu"),
    "restarts below the threshold": ([pod(container(2, last=crashed(1)))], None, None, ""),
    "crash loop at the threshold": ([pod(container(3, last=crashed(1)))], None, "CrashLoop",
                                    "restarted 3 times, last exit code 1 (Error)"),
    "runtime package exit code at once": ([pod(container(1, last=crashed(13)))], None, "CrashLoop",
                                          "exit code 13 (DigestMismatch)"),
    "startup probe budget spent, still running": (
        [pod(container(0, state={"running": {"startedAt": ago(75)}}))], None, "StartupTimeout", "budget 60s"),
    "startup probe within budget": ([pod(container(0, state={"running": {"startedAt": ago(65)}}))], None, None, ""),
    "stopped after the whole startup budget": ([pod(container(1, last=crashed(137, ran=61)))], None,
                                               "StartupTimeout", "stopped after 61s"),
    "stopped after serving for an hour (liveness)": ([pod(container(1, last=crashed(137, ran=3600)))], None,
                                                     None, ""),
    "never ready beyond the limit": (
        [pod(container(0, state={"running": {"startedAt": ago(100)}}, started=True, ready_since=90))], None,
        "NeverReady", "not ready for 90s"),
    "not ready yet, within the limit": (
        [pod(container(0, state={"running": {"startedAt": ago(40)}}, started=True, ready_since=40))], None, None, ""),
    "image pull errors that last": ([pod(container(0, state={"waiting": {"reason": "ImagePullBackOff"}}), age=200)],
                                    None, "ImagePullBackOff", "ImagePullBackOff for 200s"),
    "image pull errors, a young pod": ([pod(container(0, state={"waiting": {"reason": "ImagePullBackOff"}}),
                                            age=30)], None, None, ""),
    "progress deadline": ([], DEADLINE, "ProgressDeadlineExceeded", "timed out progressing"),
    "pods of another revision": ([pod(container(5, last=crashed(1)), revision=1)], None, None, ""),
    "pods being deleted": ([pod(container(5, last=crashed(1)), deleting=True)], None, None, ""),
}


@pytest.mark.parametrize("case", list(CASES))
def test_evidence(case: str) -> None:
    pods, deployment, reason, fragment = CASES[case]
    found = revision_failure(deployment, pods, 2, NOW, LIMITS)
    if reason is None:
        assert found is None
        return
    assert isinstance(found, Problem)
    assert found.reason == reason
    assert fragment in found.message
    assert "m-2-abc" in found.message or reason == "ProgressDeadlineExceeded"


def test_the_first_pod_in_name_order_decides() -> None:
    pods = [pod(unschedulable(40), name="m-2-zzz"), pod(container(3, last=crashed(1)), name="m-2-aaa")]
    found = revision_failure(None, pods, 2, NOW, LIMITS)
    assert found is not None
    assert (found.reason, "m-2-aaa" in found.message) == ("CrashLoop", True)
