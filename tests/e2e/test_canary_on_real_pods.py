"""Canary rollouts (spec.rollout.strategy Canary) on real pods, with client loops through the model's Service and
the operator as the chart installs it (two replicas, leader election), judging real runtimes' /metrics:
- a good candidate steps through, survives the leader being killed mid-canary (same step), is replaced by a spec
  change mid-canary (the new revision starts over at step 1), waits at a manual step for the promote annotation,
  and is promoted: no client request fails;
- a candidate that fails on part of its inputs (a real ONNX model whose Gather goes out of range) is aborted
  within two analysis windows that saw it serve, and the share of client requests that failed is at most its
  weight; the stable revision gets its replicas back and answers everything again;
- a slower candidate (a real model that spins about 0.1 s per inference) is aborted on the p99 ratio;
- a shadow candidate with other weights, in a shadow-only step, is aborted on disagreement, and every client
  answer came from the stable revision;
- `mlmodel abort` (the annotation) rolls a canary back with no failed request."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import pytest

from hack.traffic import ClientLoop
from tests.e2e.conftest import InClusterOperator
from tests.e2e.models import INFER_BODY, PICKY_BODY, E2EPackages
from tests.e2e.realpods import model_manifest, rollout_done, service_url
from tests.operator.cluster import get_model, wait_condition
from tests.support.kube import Kubectl
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore, pytest.mark.slow]

WINDOW = 10  # seconds per analysis window
T = TypeVar("T")


def _canary(*steps: dict[str, Any], **analysis: Any) -> dict[str, Any]:
    return {"strategy": "Canary", "canary": {
        "steps": list(steps), "analysis": {"windowSeconds": WINDOW, "minRequests": 10, **analysis}}}


def _patch_source(kubectl: Kubectl, namespace: str, uri: str) -> None:
    patch = {"spec": {"source": {"uri": uri}}}
    kubectl.run("patch", "mlmodel", "m", "-n", namespace, "--type=merge", "-p", json.dumps(patch))


def _canary_status(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    return dict(get_model(kubectl, namespace, "m").get("status", {}).get("canary") or {})


def _until(operator: InClusterOperator, kubectl: Kubectl, namespace: str, condition: Callable[[], T | None],
           timeout: float, what: str) -> T:
    """wait_for, and on a timeout the model's status, its Deployments and the operator's logs in the failure."""
    try:
        return wait_for(condition, timeout, what)
    except AssertionError as timed_out:
        status = json.dumps(get_model(kubectl, namespace, "m").get("status"), indent=1)[-3000:]
        deployments = kubectl.run("get", "deployments,pods", "-n", namespace, "-o", "wide", check=False).stdout
        raise AssertionError(f"{timed_out}\nstatus: {status}\n{deployments}\n{operator.logs()[-4000:]}") from None


class Analyses:
    """The analysis windows status.canary showed, by when they ended (polled while the test waits)."""

    def __init__(self, kubectl: Kubectl, namespace: str) -> None:
        self.kubectl, self.namespace = kubectl, namespace
        self.seen: dict[str, dict[str, Any]] = {}

    def status(self) -> dict[str, Any]:
        model = get_model(self.kubectl, self.namespace, "m")
        canary = (model.get("status") or {}).get("canary") or {}
        if canary.get("analysis"):
            self.seen.setdefault(canary["analysis"]["time"], {**canary["analysis"], "step": canary["step"],
                                                              "revision": canary["revision"]})
        return dict(model.get("status") or {})

    def failed_revision(self, revision: int) -> dict[str, Any] | None:
        status = self.status()
        return next((e for e in status.get("history", []) if e["revision"] == revision and e["outcome"] == "Failed"),
                    None)


def _serving_v1(kubectl: Kubectl, namespace: str, packages: E2EPackages, rollout: dict[str, Any]) -> str:
    kubectl.apply(model_manifest("m", packages.good("m/1", seed=1), replicas=2, rollout=rollout), namespace)
    wait_condition(kubectl, namespace, "m", "Ready", timeout=240)
    return service_url(kubectl, namespace, "m")


def test_a_good_candidate_through_a_restart_a_spec_change_and_a_manual_promote(
    operator: InClusterOperator, model_ns: str, packages: E2EPackages, kubectl: Kubectl,
) -> None:
    until = partial(_until, operator, kubectl, model_ns)
    # The latency bound is loose here: a fresh candidate pod on this machine's two loaded cores answered with a p99
    # 7x the warm stable revision's in one full run (a few ms each); test 3 checks the latency bound.
    url = _serving_v1(kubectl, model_ns, packages,
                      _canary({"weight": 25}, {"weight": 50, "untilPromoted": True}, maxLatencyRatio=50))
    with ClientLoop(url, INFER_BODY) as loop:
        loop.wait_for_requests(20, 60)
        _patch_source(kubectl, model_ns, packages.good("m/2", seed=2))
        at_step_2 = until(lambda: (c := _canary_status(kubectl, model_ns)).get("step") == 2
                             and c.get("revision") == 2 and c, 240, "revision 2's canary to pass step 1")
        assert at_step_2["phase"] == "Progressing"
        assert at_step_2["analysis"]["verdict"] == "Pass", at_step_2
        candidate = kubectl.json("get", "deployment", "m-canary", "-n", model_ns)
        assert candidate["spec"]["replicas"] == 1  # 50% of 2 within 2 + 1 pods: 1 candidate beside 2 stable
        assert get_model(kubectl, model_ns, "m")["status"]["revision"] == 1

        # The leader dies mid-canary: the other replica resumes at step 2 (a new window, the same step).
        leader = operator.leader()
        kubectl.run("delete", "pod", leader, "-n", operator.namespace, "--grace-period=0", "--force")
        until(lambda: operator.leader() not in ("", leader), 90, "the other replica to take the Lease")
        later = until(lambda: (c := _canary_status(kubectl, model_ns)).get("analysis", {}).get("time")
                         != at_step_2["analysis"]["time"] and c, 120, "an analysis window of the new leader")
        assert (later["revision"], later["step"], later["phase"]) == (2, 2, "Progressing"), later
        assert "waits for mlmodel promote" in later["message"]

        # A spec change mid-canary: revision 3 starts over at step 1; revision 2 never served.
        _patch_source(kubectl, model_ns, packages.good("m/3", seed=3))
        until(lambda: (c := _canary_status(kubectl, model_ns)).get("revision") == 3 and c.get("step") == 2,
                 240, "revision 3's canary to reach the manual step")
        history = {e["revision"]: e["outcome"] for e in get_model(kubectl, model_ns, "m")["status"]["history"]}
        assert history[2] == "Superseded"

        # `mlmodel promote`: a new value of the annotation.
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        kubectl.run("annotate", "mlmodel", "m", "-n", model_ns, f"serving.mlmodel.io/promote={stamp}", "--overwrite")
        until(lambda: _canary_status(kubectl, model_ns).get("phase") == "Promoted", 240, "the promotion")
        assert get_model(kubectl, model_ns, "m")["status"]["revision"] == 3
        until(lambda: kubectl.run("get", "deployment", "m-canary", "-n", model_ns, check=False).returncode != 0,
                 60, "the candidate's Deployment to go")
        until(lambda: rollout_done(kubectl, model_ns, "m", 3, replicas=2), 120, "only revision 3's pods")
        seen = loop.tally.ok + loop.tally.failed
        loop.wait_for_requests(seen + 20, 60)
    tally = loop.tally
    assert tally.failed == 0, tally.summary()
    assert tally.revisions["2"] > 0, tally.revisions  # the candidates served their share
    assert tally.revisions["3"] > 0, tally.revisions
    reasons = {e["reason"] for e in kubectl.json("get", "events", "-n", model_ns)["items"]}
    assert {"CanaryStarted", "CanaryAnalysisPass", "CanaryStep", "CanaryPromoting", "CanaryPromoted"} <= reasons


def test_a_candidate_failing_on_some_inputs_is_aborted_within_two_windows(
    operator: InClusterOperator, model_ns: str, packages: E2EPackages, kubectl: Kubectl,
) -> None:
    until = partial(_until, operator, kubectl, model_ns)
    url = _serving_v1(kubectl, model_ns, packages,
                      _canary({"weight": 25, "pauseSeconds": 300}, {"weight": 50}, maxErrorRatio=0.05))
    analyses = Analyses(kubectl, model_ns)
    with ClientLoop(url, INFER_BODY) as good, ClientLoop(url, PICKY_BODY) as picky:
        good.wait_for_requests(20, 60)
        _patch_source(kubectl, model_ns, packages.picky("m/2", seed=2))
        failed = until(lambda: analyses.failed_revision(2), 300, "revision 2 to be aborted")
        aborted_at = time.monotonic()
        weight = _canary_status(kubectl, model_ns)  # as the canary ended: its step's weight
        wait_condition(kubectl, model_ns, "m", "Stalled", reason="RolledBack", timeout=60)
        until(lambda: kubectl.run("get", "deployment", "m-canary", "-n", model_ns, check=False).returncode != 0,
                 60, "the candidate's Deployment to go")
        until(lambda: rollout_done(kubectl, model_ns, "m", 1, replicas=2), 120, "only revision 1's pods")
        failures = picky.tally.failed
        picky.wait_for_requests(picky.tally.ok + picky.tally.failed + 20, 60)
        assert picky.tally.failed == failures, picky.tally.summary()  # the stable revision answers them all
    assert failed["reason"] == "CanaryAborted", failed
    assert failed["message"].startswith("error ratio "), failed
    served = [a for a in analyses.seen.values() if a["revision"] == 2 and a["candidateRequests"] > 0]
    assert 1 <= len(served) <= 2, served
    assert good.tally.failed == 0, good.tally.summary()  # the candidate answers the inputs it can
    total = good.tally.ok + good.tally.failed + picky.tally.ok + picky.tally.failed
    share = picky.tally.failed / total
    assert share <= weight["weight"] / 100, (share, weight)  # the step's weight: 25%
    first = picky.tally.first_failure
    assert first is not None
    print(f"\ncanary abort: {aborted_at - first:.1f}s from the first failed request to the abort seen in status "
          f"(windows of {WINDOW}s, {len(served)} window(s) with candidate traffic); failed share {share:.1%} of "
          f"{total} requests at a weight of {weight['weight']}%; {failed['message']}")


def test_a_slower_candidate_is_aborted_on_the_p99_ratio(
    operator: InClusterOperator, model_ns: str, packages: E2EPackages, kubectl: Kubectl,
) -> None:
    until = partial(_until, operator, kubectl, model_ns)
    url = _serving_v1(kubectl, model_ns, packages, _canary({"weight": 25, "pauseSeconds": 300}, {"weight": 50}))
    analyses = Analyses(kubectl, model_ns)
    with ClientLoop(url, INFER_BODY) as loop:
        loop.wait_for_requests(20, 60)
        _patch_source(kubectl, model_ns, packages.spinning("m/2", trips=60000, version="2"))
        failed = until(lambda: analyses.failed_revision(2), 300, "revision 2 to be aborted")
        until(lambda: rollout_done(kubectl, model_ns, "m", 1, replicas=2), 120, "only revision 1's pods")
    assert failed["reason"] == "CanaryAborted", failed
    assert "p99" in failed["message"], failed
    assert loop.tally.failed == 0, loop.tally.summary()
    assert loop.tally.revisions["2"] > 0, loop.tally.revisions
    print(f"\nslow candidate aborted: {failed['message']}")


def test_a_shadow_candidate_that_disagrees_is_aborted_and_no_client_gets_its_answers(
    operator: InClusterOperator, model_ns: str, packages: E2EPackages, kubectl: Kubectl,
) -> None:
    until = partial(_until, operator, kubectl, model_ns)
    # Shadow copies are binary requests, the clients' JSON: their latencies are not compared here.
    rollout = _canary({"weight": 0, "pauseSeconds": 300}, {"weight": 50}, maxDisagreement=0.05, maxLatencyRatio=20)
    rollout["canary"]["shadow"] = {"percent": 50}
    url = _serving_v1(kubectl, model_ns, packages, rollout)
    analyses = Analyses(kubectl, model_ns)
    with ClientLoop(url, INFER_BODY) as loop:
        loop.wait_for_requests(20, 60)
        _patch_source(kubectl, model_ns, packages.good("m/2", seed=2))  # other weights: other answers
        # The stable pods follow the shadow ConfigMap once the kubelet has updated their mounted copy.
        failed = until(lambda: analyses.failed_revision(2), 300, "revision 2 to be aborted on disagreement")
        until(lambda: kubectl.run("get", "configmap", "m-shadow", "-n", model_ns, check=False).returncode != 0,
              60, "the shadow ConfigMap to go")
    assert failed["reason"] == "CanaryAborted", failed
    assert failed["message"].startswith("disagreement "), failed
    assert loop.tally.failed == 0, loop.tally.summary()
    assert set(loop.tally.revisions) == {"1"}, loop.tally.revisions  # no client got the candidate's answer
    print(f"\nshadow candidate aborted: {failed['message']}")


def test_a_manual_abort_rolls_back_without_a_failed_request(
    operator: InClusterOperator, model_ns: str, packages: E2EPackages, kubectl: Kubectl,
) -> None:
    until = partial(_until, operator, kubectl, model_ns)
    url = _serving_v1(kubectl, model_ns, packages, _canary({"weight": 50, "untilPromoted": True},
                                                           maxLatencyRatio=50))
    with ClientLoop(url, INFER_BODY) as loop:
        loop.wait_for_requests(20, 60)
        _patch_source(kubectl, model_ns, packages.good("m/2", seed=2))
        until(lambda: (c := _canary_status(kubectl, model_ns)).get("revision") == 2 and c.get("achievedWeight"),
              240, "revision 2's canary to take traffic")
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        kubectl.run("annotate", "mlmodel", "m", "-n", model_ns, f"serving.mlmodel.io/abort={stamp}", "--overwrite")
        failed = until(lambda: next((e for e in get_model(kubectl, model_ns, "m")["status"].get("history", [])
                                     if e["revision"] == 2 and e["outcome"] == "Failed"), None), 60, "the abort")
        until(lambda: rollout_done(kubectl, model_ns, "m", 1, replicas=2), 120, "only revision 1's pods")
        seen = loop.tally.ok + loop.tally.failed
        loop.wait_for_requests(seen + 20, 60)
    assert (failed["reason"], failed["message"]) == ("CanaryAborted", "aborted by request (mlmodel abort)")
    assert loop.tally.failed == 0, loop.tally.summary()
    assert loop.tally.revisions["2"] > 0, loop.tally.revisions
