"""A rolling update between two good revisions on real pods, under a steady client loop through the Service:
no request fails (readiness, maxUnavailable 0 and the runtime's SIGTERM draining work together), and both
revisions answered."""

from __future__ import annotations

import json

import pytest

from hack.traffic import ClientLoop
from tests.e2e.conftest import InClusterOperator
from tests.e2e.models import INFER_BODY, E2EPackages
from tests.e2e.realpods import REAL_NODE, model_manifest, pods, rollout_done, service_url
from tests.operator.cluster import wait_condition
from tests.support.kube import Kubectl
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore, pytest.mark.slow]


def test_rolling_update_between_good_revisions_fails_no_request(
    operator: InClusterOperator, model_ns: str, packages: E2EPackages, kubectl: Kubectl,
) -> None:
    kubectl.apply(model_manifest("m", packages.good("m/1", seed=1), replicas=2), model_ns)
    wait_condition(kubectl, model_ns, "m", "Ready", timeout=240)
    assert {p["spec"]["nodeName"] for p in pods(kubectl, model_ns)} == {REAL_NODE}

    with ClientLoop(service_url(kubectl, model_ns, "m"), INFER_BODY) as loop:
        loop.wait_for_requests(30, 60)
        patch = {"spec": {"source": {"uri": packages.good("m/2", seed=2)}}}
        kubectl.run("patch", "mlmodel", "m", "-n", model_ns, "--type=merge", "-p", json.dumps(patch))
        ready = wait_condition(kubectl, model_ns, "m", "Ready", timeout=240)
        assert ready["status"]["revision"] == 2
        wait_for(lambda: rollout_done(kubectl, model_ns, "m", 2, replicas=2), 120, "only revision 2's pods")
        seen = loop.tally.ok + loop.tally.failed
        loop.wait_for_requests(seen + 30, 60)
    tally = loop.tally
    assert tally.failed == 0, tally.summary()
    assert tally.revisions["1"] > 0, tally.revisions
    assert tally.revisions["2"] > 0, tally.revisions
