"""The real Deployment machinery on simulated nodes: a crash-looping rollout hits its progress deadline;
`kubectl rollout undo` brings back the earlier ReplicaSet; deleting a Deployment garbage-collects its
ReplicaSets and pods."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.kube import Kubectl, condition
from tests.support.waiting import wait_for
from tests.support.workloads import deployment

pytestmark = pytest.mark.cluster


def test_crashloop_rollout_exceeds_progress_deadline(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(
        deployment("crashy", labels={"mlmodel.io/simulate": "crashloop"}, progress_deadline=5), namespace
    )

    def restarted() -> int:
        pods = kubectl.json("get", "pods", "-n", namespace, "-l", "app=crashy")["items"]
        statuses = pods[0]["status"].get("containerStatuses", []) if pods else []
        return max((s["restartCount"] for s in statuses if s["state"].get("waiting", {}).get(
            "reason") == "CrashLoopBackOff"), default=0)

    # The container restarts again and again, as a crash loop does.
    assert wait_for(lambda: restarted() >= 2, 30, "a second restart of the crash-looping container")

    def progressing() -> dict[str, str] | None:
        dep = kubectl.json("get", "deployment", "crashy", "-n", namespace)
        c = condition(dep, "Progressing")
        return c if c and c["status"] == "False" else None

    c = wait_for(progressing, 60, "Progressing=False on the Deployment")
    assert c["reason"] == "ProgressDeadlineExceeded"


def test_rollout_undo_brings_back_earlier_replicaset(kubectl: Kubectl, namespace: str) -> None:
    def rollout(version: str) -> None:
        kubectl.apply(deployment("web", env={"VERSION": version}), namespace)
        kubectl.run("rollout", "status", "-n", namespace, "deployment/web", "--timeout=60s")

    def active_version() -> str:
        rss = kubectl.json("get", "replicasets", "-n", namespace, "-l", "app=web")["items"]
        active = [rs for rs in rss if rs["spec"]["replicas"] > 0]
        assert len(active) == 1, [rs["metadata"]["name"] for rs in active]
        return str(active[0]["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"])

    rollout("1")
    rs1 = {rs["metadata"]["name"] for rs in kubectl.json("get", "rs", "-n", namespace)["items"]}
    rollout("2")
    rollout("3")
    assert active_version() == "3"

    kubectl.run("rollout", "undo", "-n", namespace, "deployment/web")
    kubectl.run("rollout", "status", "-n", namespace, "deployment/web", "--timeout=60s")
    assert active_version() == "2"
    kubectl.run("rollout", "undo", "-n", namespace, "deployment/web", "--to-revision=1")
    kubectl.run("rollout", "status", "-n", namespace, "deployment/web", "--timeout=60s")
    assert active_version() == "1"
    # The same ReplicaSet object as revision 1's, scaled back up, not a new one.
    active = [rs["metadata"]["name"] for rs in kubectl.json("get", "rs", "-n", namespace)["items"]
              if rs["spec"]["replicas"] > 0]
    assert set(active) <= rs1


def test_deleting_deployment_collects_replicasets_and_pods(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(deployment("gone", replicas=2), namespace)
    kubectl.run("rollout", "status", "-n", namespace, "deployment/gone", "--timeout=60s")
    assert len(kubectl.json("get", "pods", "-n", namespace, "-l", "app=gone")["items"]) == 2

    kubectl.run("delete", "deployment", "gone", "-n", namespace, "--wait=false")
    wait_for(lambda: not kubectl.json("get", "rs,pods", "-n", namespace, "-l", "app=gone")["items"],
             60, "the garbage collector to remove the ReplicaSet and its pods")


def test_never_ready_pods_run_but_never_become_ready(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(deployment("stuck", labels={"mlmodel.io/simulate": "never-ready"}), namespace)

    def running() -> dict[str, Any] | None:
        pods = kubectl.json("get", "pods", "-n", namespace, "-l", "app=stuck")["items"]
        return pods[0] if pods and pods[0]["status"].get("phase") == "Running" else None

    pod: dict[str, Any] = wait_for(running, 60, "the never-ready pod to run")
    ready = condition(pod, "Ready")
    assert ready is not None
    assert ready["status"] == "False"
    dep = kubectl.json("get", "deployment", "stuck", "-n", namespace)
    assert dep["status"].get("availableReplicas", 0) == 0
