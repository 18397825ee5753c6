"""The operator as the chart deploys it, two replicas with leader election: killing the leader's pod in the
middle of a rollout hands the Lease to the other replica, which finishes the rollout."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import InClusterOperator
from tests.e2e.models import E2EPackages
from tests.e2e.realpods import model_manifest, rollout_done
from tests.operator.cluster import get_model, wait_condition
from tests.support.kube import Kubectl
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore, pytest.mark.slow]


def test_the_other_replica_finishes_the_rollout(
    operator: InClusterOperator, model_ns: str, packages: E2EPackages, kubectl: Kubectl,
) -> None:
    assert len(operator.pods()) == 2
    kubectl.apply(model_manifest("m", packages.good("m/1", seed=1), replicas=2), model_ns)
    wait_condition(kubectl, model_ns, "m", "Ready", timeout=240)

    patch = {"spec": {"source": {"uri": packages.good("m/2", seed=2)}}}
    kubectl.run("patch", "mlmodel", "m", "-n", model_ns, "--type=merge", "-p", json.dumps(patch))
    # Mid-rollout: the leader has validated the package and applied the new revision, which is not Ready yet.
    wait_for(lambda: get_model(kubectl, model_ns, "m").get("status", {}).get("desiredRevision") == 2, 120,
             "the leader to start revision 2")
    leader = operator.leader()
    kubectl.run("delete", "pod", leader, "-n", operator.namespace, "--grace-period=0", "--force")

    wait_for(lambda: operator.leader() not in ("", leader), 90, "the other replica to take the Lease")
    done = wait_condition(kubectl, model_ns, "m", "Ready", timeout=240)
    assert done["status"]["revision"] == 2, operator.logs()
    wait_for(lambda: rollout_done(kubectl, model_ns, "m", 2, replicas=2), 120, "only revision 2's pods")
    # The killed replica is replaced by the chart's Deployment and stands by.
    wait_for(lambda: len([p for p in operator.pods() if p["status"].get("phase") == "Running"]) == 2, 120,
             "two operator replicas again")
