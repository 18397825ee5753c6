"""Scaling a model down and deleting one of its pods lose no accepted request: the runtime stops taking
new connections only once it is out of the Service's endpoints and finishes what it accepted."""

from __future__ import annotations

import pytest

from hack.traffic import ClientLoop
from tests.e2e.conftest import InClusterOperator
from tests.e2e.models import INFER_BODY, E2EPackages
from tests.e2e.realpods import model_manifest, pods, ready, service_url
from tests.operator.cluster import wait_condition
from tests.support.kube import Kubectl
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore, pytest.mark.slow]


def test_scale_down_then_pod_deletion_fail_no_request(
    operator: InClusterOperator, model_ns: str, packages: E2EPackages, kubectl: Kubectl,
) -> None:
    kubectl.apply(model_manifest("m", packages.good("m/1", seed=1), replicas=3), model_ns)
    wait_condition(kubectl, model_ns, "m", "Ready", timeout=240)
    wait_for(lambda: len([p for p in pods(kubectl, model_ns) if ready(p)]) == 3, 120, "3 ready pods")

    with ClientLoop(service_url(kubectl, model_ns, "m"), INFER_BODY) as loop:
        loop.wait_for_requests(20, 60)
        kubectl.run("scale", "mlmodel", "m", "-n", model_ns, "--replicas=2")
        wait_for(lambda: len(kubectl.json("get", "pods", "-n", model_ns)["items"]) == 2, 120,
                 "scaled down to 2 pods (the third gone, not terminating)")
        seen = loop.tally.ok + loop.tally.failed
        loop.wait_for_requests(seen + 20, 60)

        victim = pods(kubectl, model_ns)[0]["metadata"]["name"]
        kubectl.run("delete", "pod", victim, "-n", model_ns, "--wait=true", "--timeout=120s")
        wait_for(lambda: len([p for p in pods(kubectl, model_ns) if ready(p)]) == 2, 120, "a replacement ready")
        seen = loop.tally.ok + loop.tally.failed
        loop.wait_for_requests(seen + 20, 60)
    assert loop.tally.failed == 0, loop.tally.summary()
