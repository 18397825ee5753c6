"""Revisions that really fail in a real pod are rolled back while the serving revision keeps serving:
- a package onnxruntime cannot load: the runtime exits with its contract exit code, the kubelet restarts it
  (CrashLoopBackOff), the operator rolls back; the serving revision's pods are never restarted;
- a model that loads but never becomes ready (its warm-up never ends): the startup probe's budget runs out,
  the operator rolls back.
A client loop through the Service sees no failed request during either."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hack.traffic import ClientLoop
from tests.e2e.conftest import InClusterOperator
from tests.e2e.models import INFER_BODY, E2EPackages
from tests.e2e.realpods import model_manifest, pods, restarts, service_url
from tests.operator.cluster import wait_condition
from tests.support.kube import Kubectl

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore, pytest.mark.slow]


def _serve_then_break(kubectl: Kubectl, ns: str, good: str, broken: str, **spec: Any) -> tuple[dict[str, Any], Any]:
    kubectl.apply(model_manifest("m", good, replicas=2), ns)
    wait_condition(kubectl, ns, "m", "Ready", timeout=240)
    serving = {p["metadata"]["uid"]: p for p in pods(kubectl, ns, revision=1)}
    with ClientLoop(service_url(kubectl, ns, "m"), INFER_BODY) as loop:
        loop.wait_for_requests(20, 60)
        patch = {"spec": {"source": {"uri": broken}, **spec}}
        kubectl.run("patch", "mlmodel", "m", "-n", ns, "--type=merge", "-p", json.dumps(patch))
        rolled = wait_condition(kubectl, ns, "m", "RolledBack", timeout=300)
        wait_condition(kubectl, ns, "m", "Ready", timeout=120)
        seen = loop.tally.ok + loop.tally.failed
        loop.wait_for_requests(seen + 20, 60)
    assert loop.tally.failed == 0, loop.tally.summary()
    assert set(loop.tally.revisions) == {"1"}, loop.tally.revisions
    after = {p["metadata"]["uid"]: p for p in pods(kubectl, ns, revision=1)}
    assert set(after) == set(serving), "the serving revision's pods were replaced"
    assert all(restarts(p) == 0 for p in after.values()), "a serving pod was restarted"
    assert rolled["status"]["revision"] == 1
    return rolled, loop.tally


def test_unloadable_package_crash_loops_and_rolls_back(
    operator: InClusterOperator, model_ns: str, packages: E2EPackages, kubectl: Kubectl,
) -> None:
    rolled, _ = _serve_then_break(kubectl, model_ns, packages.good("m/1", seed=1), packages.unloadable("m/2"))
    failed = next(h for h in rolled["status"]["history"] if h["revision"] == 2)
    assert failed["outcome"] == "Failed"
    # docs/contracts.md: a model the framework cannot load ends the runtime with exit code 1.
    assert "exit code 1" in failed["message"], failed
    events = kubectl.json("get", "events", "-n", model_ns, "--field-selector", "involvedObject.kind=Pod")["items"]
    assert any(e["reason"] == "BackOff" for e in events), "no real CrashLoopBackOff seen"


def test_model_that_never_becomes_ready_rolls_back(
    operator: InClusterOperator, model_ns: str, packages: E2EPackages, kubectl: Kubectl,
) -> None:
    # The stuck warm-up spins a core: a CPU limit keeps it from starving the rest of this small machine.
    limited = {"resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "200m",
                                                                                       "memory": "1Gi"}}}
    rolled, _ = _serve_then_break(kubectl, model_ns, packages.good("m/1", seed=1), packages.stuck("m/2"), **limited)
    failed = next(h for h in rolled["status"]["history"] if h["revision"] == 2)
    assert failed["outcome"] == "Failed"
    assert "startup probe" in failed["message"], failed
