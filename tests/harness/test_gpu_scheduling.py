"""GPU pool scheduling is real: a pod asking for nvidia.com/gpu with the toleration lands on a GPU node and
its Deployment becomes Available; without the toleration the scheduler leaves it Pending as Unschedulable."""

from __future__ import annotations

import pytest

from tests.support.kube import Kubectl, condition
from tests.support.waiting import wait_for
from tests.support.workloads import deployment

pytestmark = pytest.mark.cluster


def test_gpu_pod_with_toleration_runs_on_gpu_node(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(deployment("gpu-ok", gpus=2, tolerate_gpu=True), namespace)
    kubectl.run("wait", "-n", namespace, "deployment/gpu-ok", "--for=condition=Available", "--timeout=60s")
    pods = kubectl.json("get", "pods", "-n", namespace, "-l", "app=gpu-ok")["items"]
    assert len(pods) == 1
    node = kubectl.json("get", "node", pods[0]["spec"]["nodeName"])
    assert node["metadata"]["labels"]["pool"] == "gpu-a100"
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "4"


def test_gpu_pod_without_toleration_is_unschedulable(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(deployment("gpu-no-toleration", gpus=1), namespace)

    def unschedulable() -> dict[str, str] | None:
        pods = kubectl.json("get", "pods", "-n", namespace, "-l", "app=gpu-no-toleration")["items"]
        scheduled = condition(pods[0], "PodScheduled") if pods else None
        return scheduled if scheduled and scheduled.get("reason") == "Unschedulable" else None

    scheduled = wait_for(unschedulable, 60, "the scheduler to report the pod Unschedulable")
    assert scheduled["status"] == "False"
    # The scheduler's own words: the GPU nodes' taint and the CPU node's missing GPUs.
    assert "untolerated taint" in scheduled["message"]
    assert "Insufficient nvidia.com/gpu" in scheduled["message"]
    pod = kubectl.json("get", "pods", "-n", namespace, "-l", "app=gpu-no-toleration")["items"][0]
    assert pod["status"]["phase"] == "Pending"
    assert not pod["spec"].get("nodeName")
