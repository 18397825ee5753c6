"""spec.rollout.strategy Canary in reconcile passes, against the fake API (tests/operator/fakeapi.py) and fake
runtime /metrics (what each pod's counters say when the analysis scrapes it):
- the model's first revision rolls out as Surge (nothing to compare with);
- a new revision starts as a canary: its own Deployment (<model>-canary) with the replicas its weight needs, the
  stable revision within the GPU budget, Ready=True with Reconciling=True/Canary (kstatus InProgress);
- passing windows move it step by step, then it is promoted: the model's Deployment takes the revision, the
  candidate's Deployment goes, status.canary says Promoted; each decision is an event;
- a failing window aborts it: history records the revision Failed with reason CanaryAborted and the figures,
  the stable revision gets its replicas back, the candidate's Deployment goes;
- crash-looping candidate pods fail it like any rollout; manual steps wait for the promote annotation; the abort
  annotation aborts; an operator started again resumes at the same step; a spec change starts over."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from mlmodel_operator.canary.rollout import split
from mlmodel_operator.config import OperatorConfig

from tests.operator import factories
from tests.operator.fakeapi import NS, Cluster

V1 = "s3://models/m/1/"
V2 = "s3://models/m/2/"
V3 = "s3://models/m/3/"
WINDOW = 30


def _canary(*steps: dict[str, Any], **analysis: Any) -> dict[str, Any]:
    return {"strategy": "Canary", "canary": {
        "steps": list(steps) or [{"weight": 25}, {"weight": 50}],
        "analysis": {"windowSeconds": WINDOW, "minRequests": 10, "maxErrorRatio": 0.05, **analysis}}}


def _serving(replicas: int = 4, config: OperatorConfig | None = None, **rollout: Any) -> tuple[Cluster, Any]:
    """A model serving revision 1 with the canary strategy, and its operator."""
    world = Cluster(config=config) if config is not None else Cluster()
    world.secret()
    for i, uri in enumerate((V1, V2, V3), start=1):
        world.packages.add(uri, "sha256:" + f"{i:02d}" * 32)
    world.create("m", V1, replicas=replicas, rollout=rollout or _canary())
    op = world.reconciler()
    op.reconcile(NS, "m")
    assert world.kube.get("deployments", NS, "m-canary") is None  # the first revision: no canary
    world.roll_out("m")
    op.reconcile(NS, "m")
    assert world.conditions("m")["Ready"] == ("True", "Serving")
    return world, op


class Traffic:
    """Each runtime pod's counters, as its /metrics serves them."""

    def __init__(self, world: Cluster) -> None:
        self.world = world
        self.counts: dict[str, Counter[str]] = {}

    def serve(self, revision: int, ok: int, failed: int = 0, slow: bool = False, agree: int = 0, disagree: int = 0
              ) -> None:
        """Every pod of `revision` answers `ok` requests and `failed` server errors (fast, or slow: 0.5 s), and
        compares `agree` + `disagree` shadow copies to revision 2's answers."""
        pods = [o for (r, _, _), o in self.world.kube.objects.items()
                if r == "pods" and o["metadata"]["labels"]["serving.mlmodel.io/revision"] == str(revision)]
        assert pods, f"no pods of revision {revision}"
        for pod in pods:
            name = pod["metadata"]["name"]
            c = self.counts.setdefault(name, Counter())
            c["ok"] += ok
            c["failed"] += failed
            c["slow" if slow else "fast"] += ok + failed
            c["agree"] += agree
            c["disagree"] += disagree
            self.world.pod_metrics[name] = self._text(revision, c)

    @staticmethod
    def _text(revision: int, c: Counter[str]) -> str:
        labels = f'model="m",revision="{revision}"'
        fast, total = c["fast"], c["fast"] + c["slow"]
        return "\n".join([
            "# TYPE mlmodel_runtime_requests counter",
            f'mlmodel_runtime_requests_total{{{labels},code="200",protocol="rest"}} {c["ok"]}',
            f'mlmodel_runtime_requests_total{{{labels},code="500",protocol="rest"}} {c["failed"]}',
            "# TYPE mlmodel_runtime_request_duration_seconds histogram",
            f'mlmodel_runtime_request_duration_seconds_bucket{{{labels},protocol="rest",le="0.01"}} {fast}',
            f'mlmodel_runtime_request_duration_seconds_bucket{{{labels},protocol="rest",le="1.0"}} {total}',
            f'mlmodel_runtime_request_duration_seconds_bucket{{{labels},protocol="rest",le="+Inf"}} {total}',
            f'mlmodel_runtime_request_duration_seconds_count{{{labels},protocol="rest"}} {total}',
            f'mlmodel_runtime_request_duration_seconds_sum{{{labels},protocol="rest"}} 1.0',
            "# TYPE mlmodel_runtime_shadow_requests counter",
            f'mlmodel_runtime_shadow_requests_total{{{labels},candidate="2",result="agree"}} {c["agree"]}',
            f'mlmodel_runtime_shadow_requests_total{{{labels},candidate="2",result="disagree"}} {c["disagree"]}',
        ]) + "\n"


def _canary_status(world: Cluster) -> dict[str, Any]:
    return dict(world.status("m")["canary"])


def _window(world: Cluster, op: Any, traffic: Traffic, candidate_ok: int = 20, candidate_failed: int = 0,
            slow: bool = False) -> None:
    """One analysis window: the start scrape, traffic to both revisions, the end scrape."""
    op.reconcile(NS, "m")
    traffic.serve(1, 50)
    traffic.serve(2, candidate_ok, candidate_failed, slow=slow)
    world.clock.advance(WINDOW)
    op.reconcile(NS, "m")


def _start_canary(world: Cluster, op: Any, uri: str = V2) -> Traffic:
    world.edit("m", {"source": {"uri": uri}})
    op.reconcile(NS, "m")
    world.roll_out("m-canary")
    traffic = Traffic(world)
    traffic.serve(1, 0)
    return traffic


def test_a_new_revision_starts_as_a_canary_within_the_gpu_budget() -> None:
    world, op = _serving(replicas=4)
    world.edit("m", {"source": {"uri": V2}})
    op.reconcile(NS, "m")
    candidate = world.deployment("m-canary")
    assert candidate["spec"]["replicas"] == 1  # 25% of 4
    assert candidate["spec"]["selector"]["matchLabels"]["serving.mlmodel.io/track"] == "canary"
    assert candidate["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] == "m"  # the Service's
    assert candidate["spec"]["template"]["metadata"]["labels"]["serving.mlmodel.io/revision"] == "2"
    assert world.revision("m") == 1
    assert world.deployment("m")["spec"]["replicas"] == 4  # 4 + 1 <= replicas + maxExtraReplicas
    canary = _canary_status(world)
    assert (canary["revision"], canary["stableRevision"], canary["phase"], canary["step"], canary["weight"]) == (
        2, 1, "Progressing", 1, 25)
    conditions = world.conditions("m")
    assert conditions["Ready"] == ("True", "Serving")
    assert conditions["Reconciling"] == ("True", "Canary")
    assert conditions["Stalled"][0] == "False"
    assert "CanaryStarted" in world.kube.event_reasons("Normal")

    world.roll_out("m-canary")
    op.reconcile(NS, "m")
    assert _canary_status(world)["achievedWeight"] == 20  # 1 of 5 ready replicas


def test_passing_windows_step_through_and_promote() -> None:
    world, op = _serving(replicas=4)
    traffic = _start_canary(world, op)
    _window(world, op, traffic)
    canary = _canary_status(world)
    assert canary["analysis"]["verdict"] == "Pass", canary
    assert (canary["step"], canary["weight"]) == (2, 50)
    assert world.deployment("m-canary")["spec"]["replicas"] == 2
    assert world.deployment("m")["spec"]["replicas"] == 3  # 3 + 2 = replicas + 1

    world.roll_out("m-canary")
    world.roll_out("m")
    _window(world, op, traffic)
    assert _canary_status(world)["phase"] == "Promoting"
    assert world.revision("m") == 2  # the model's own Deployment takes the candidate's revision
    # ... pod by pod within the budget (3 + 2 pods, no surge), the candidate serving until it is done
    assert world.deployment("m")["spec"]["replicas"] == 3
    assert world.deployment("m")["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert world.kube.get("deployments", NS, "m-canary") is not None

    world.roll_out("m")
    before = len(world.kube.writes)
    op.reconcile(NS, "m")
    assert world.kube.get("deployments", NS, "m-canary") is None
    writes = [str(w) for w in world.kube.writes[before:]]
    # the candidate's pods go before the model's Deployment grows back to spec.replicas
    assert writes.index("delete deployments m-canary") < writes.index("apply deployments m"), writes
    assert world.deployment("m")["spec"]["replicas"] == 4
    assert world.deployment("m")["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 1
    canary = _canary_status(world)
    assert canary["phase"] == "Promoted"
    assert world.history("m") == [(1, "Superseded"), (2, "Serving")]
    world.roll_out("m")  # the fourth replica
    op.reconcile(NS, "m")
    assert world.conditions("m")["Ready"] == ("True", "Serving")
    assert world.conditions("m")["Reconciling"][0] == "False"
    reasons = world.kube.event_reasons()
    for reason in ("CanaryStarted", "CanaryAnalysisPass", "CanaryStep", "CanaryPromoting", "CanaryPromoted"):
        assert reason in reasons


def test_a_failing_window_aborts_and_rolls_back_with_the_figures() -> None:
    world, op = _serving(replicas=4)
    traffic = _start_canary(world, op)
    _window(world, op, traffic, candidate_ok=18, candidate_failed=2)
    assert world.kube.get("deployments", NS, "m-canary") is None
    assert world.revision("m") == 1
    assert world.deployment("m")["spec"]["replicas"] == 4
    [failed] = [e for e in world.status("m")["history"] if e["revision"] == 2]
    assert failed["outcome"] == "Failed"
    assert failed["reason"] == "CanaryAborted"
    assert failed["message"] == "error ratio 10% > 5% over 20 requests"
    canary = _canary_status(world)
    assert canary["phase"] == "Aborted"
    assert canary["analysis"]["verdict"] == "Fail"
    assert world.conditions("m")["Stalled"] == ("True", "RolledBack")
    assert "CanaryAborted" in world.kube.event_reasons("Warning")
    assert "CanaryAnalysisFail" in world.kube.event_reasons("Warning")


def test_a_slower_candidate_is_aborted_on_the_p99_ratio() -> None:
    world, op = _serving(replicas=4)
    traffic = _start_canary(world, op)
    _window(world, op, traffic, slow=True)
    [failed] = [e for e in world.status("m")["history"] if e["revision"] == 2]
    assert failed["reason"] == "CanaryAborted"
    assert "p99" in failed["message"]
    assert "the stable revision's" in failed["message"]


def test_too_few_requests_hold_the_step() -> None:
    world, op = _serving(replicas=4)
    traffic = _start_canary(world, op)
    _window(world, op, traffic, candidate_ok=3)
    canary = _canary_status(world)
    assert (canary["step"], canary["phase"], canary["analysis"]["verdict"]) == (1, "Progressing", "Inconclusive")


def test_crash_looping_candidate_fails_like_any_rollout() -> None:
    world, op = _serving(replicas=2)
    world.edit("m", {"source": {"uri": V2}})
    op.reconcile(NS, "m")
    world.crash_loop("m-canary", restarts=3)
    world.clock.advance(5)
    op.reconcile(NS, "m")
    [failed] = [e for e in world.status("m")["history"] if e["revision"] == 2]
    assert (failed["outcome"], failed["reason"]) == ("Failed", "CrashLoop")
    assert _canary_status(world)["phase"] == "Aborted"
    assert world.kube.get("deployments", NS, "m-canary") is None
    assert world.revision("m") == 1


def test_manual_step_waits_for_promote_and_abort_annotation_aborts() -> None:
    world, op = _serving(replicas=4, **_canary({"weight": 25, "untilPromoted": True}, {"weight": 50}))
    world.edit("m", annotations={"serving.mlmodel.io/promote": "old"})  # set before the canary: not acted on
    traffic = _start_canary(world, op)
    _window(world, op, traffic)
    _window(world, op, traffic)
    canary = _canary_status(world)
    assert (canary["step"], canary["passedWindows"]) == (1, 2)
    assert "waits for mlmodel promote" in canary["message"]

    world.edit("m", annotations={"serving.mlmodel.io/promote": "2026-11-22T10:05:00Z"})
    op.reconcile(NS, "m")
    assert _canary_status(world)["step"] == 2
    world.edit("m", annotations={"serving.mlmodel.io/abort": "2026-11-22T10:06:00Z"})
    op.reconcile(NS, "m")
    [failed] = [e for e in world.status("m")["history"] if e["revision"] == 2]
    assert (failed["reason"], failed["message"]) == ("CanaryAborted", "aborted by request (mlmodel abort)")
    assert world.revision("m") == 1


def test_an_operator_started_again_resumes_at_the_same_step() -> None:
    world, op = _serving(replicas=4, **_canary({"weight": 25}, {"weight": 50}, {"weight": 75}))
    traffic = _start_canary(world, op)
    _window(world, op, traffic)
    assert _canary_status(world)["step"] == 2
    world.roll_out("m-canary")
    restarted = world.reconciler()  # nothing in memory: its first pass starts a new window at step 2
    restarted.reconcile(NS, "m")
    assert _canary_status(world)["step"] == 2
    _window(world, restarted, traffic)
    assert _canary_status(world)["step"] == 3


def test_a_spec_change_mid_canary_starts_over_from_the_new_revision() -> None:
    world, op = _serving(replicas=4)
    traffic = _start_canary(world, op)
    _window(world, op, traffic)
    assert _canary_status(world)["step"] == 2
    world.edit("m", {"source": {"uri": V3}})
    op.reconcile(NS, "m")
    canary = _canary_status(world)
    assert (canary["revision"], canary["step"], canary["phase"]) == (3, 1, "Progressing")
    assert world.revision("m-canary") == 3
    assert dict(world.history("m"))[2] == "Superseded"
    assert world.revision("m") == 1


def test_a_steady_canary_between_windows_writes_nothing() -> None:
    world, op = _serving(replicas=4)
    _start_canary(world, op)
    op.reconcile(NS, "m")
    op.reconcile(NS, "m")  # the window's start
    before = len(world.kube.writes)
    world.clock.advance(5)
    op.reconcile(NS, "m")
    world.clock.advance(5)
    op.reconcile(NS, "m")
    assert world.kube.writes[before:] == []


def test_the_split_for_a_weight_stays_within_the_budget() -> None:
    assert split(1, 20, 1) == (1, 1)
    assert split(4, 25, 1) == (4, 1)
    assert split(4, 50, 1) == (3, 2)
    assert split(4, 50, 2) == (4, 2)
    assert split(10, 10, 1) == (10, 1)
    assert split(4, 100, 1) == (1, 4)
    assert split(0, 50, 1) == (0, 1)
    for replicas in range(1, 12):
        for weight in range(1, 101):
            for extra in (1, 2, 3):
                stable, candidate = split(replicas, weight, extra)
                assert min(stable, candidate) >= 1
                assert stable + candidate <= replicas + extra, (replicas, weight, extra)


SHADOW = {"percent": 50, "absoluteTolerance": 0.001}


def _shadowed_window(world: Cluster, op: Any, traffic: Traffic, agree: int, disagree: int) -> None:
    op.reconcile(NS, "m")
    traffic.serve(1, 50, agree=agree, disagree=disagree)
    traffic.serve(2, agree + disagree)  # the copies are the candidate's only requests in a shadow-only step
    world.clock.advance(WINDOW)
    op.reconcile(NS, "m")


def test_a_shadow_step_keeps_the_candidate_out_of_the_service_and_tells_the_stable_pods() -> None:
    rollout = _canary({"weight": 0}, {"weight": 50}, maxDisagreement=0.05)
    rollout["canary"]["shadow"] = SHADOW
    world, op = _serving(replicas=2, **rollout)
    traffic = _start_canary(world, op)
    labels = world.deployment("m-canary")["spec"]["template"]["metadata"]["labels"]
    assert "app.kubernetes.io/instance" not in labels  # not behind the model's Service: no client gets its answer
    assert world.deployment("m")["spec"]["replicas"] == 2
    service = world.kube.get("services", NS, "m-canary")
    assert service is not None
    assert service["spec"]["selector"] == {"serving.mlmodel.io/track": "canary", "serving.mlmodel.io/canary-of": "m"}
    op.reconcile(NS, "m")  # the pass after the Service got its ClusterIP writes the shadow settings
    config = world.kube.get("configmaps", NS, "m-shadow")
    assert config is not None
    assert json.loads(config["data"]["shadow.json"]) == {
        "url": f"http://{service['spec']['clusterIP']}:8080", "candidate": "2", "percent": 50, "atol": 0.001,
        "rtol": 0.001}
    assert _canary_status(world)["achievedWeight"] == 0  # behind no Service of the model's clients

    _shadowed_window(world, op, traffic, agree=30, disagree=0)
    canary = _canary_status(world)
    assert (canary["step"], canary["analysis"]["verdict"]) == (2, "Pass"), canary
    labels = world.deployment("m-canary")["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "m"  # weight 50: behind the Service now
    assert world.kube.get("configmaps", NS, "m-shadow") is not None  # still copying


def test_a_disagreeing_shadow_candidate_is_aborted_and_its_objects_go() -> None:
    rollout = _canary({"weight": 0}, maxDisagreement=0.05)
    rollout["canary"]["shadow"] = SHADOW
    world, op = _serving(replicas=2, **rollout)
    traffic = _start_canary(world, op)
    _shadowed_window(world, op, traffic, agree=20, disagree=10)
    [failed] = [e for e in world.status("m")["history"] if e["revision"] == 2]
    assert failed["reason"] == "CanaryAborted"
    assert failed["message"] == "disagreement 33.3% > 5% over 60 shadowed requests"  # 2 stable pods
    for resource, name in (("deployments", "m-canary"), ("services", "m-canary"), ("configmaps", "m-shadow")):
        assert world.kube.get(resource, NS, name) is None, resource


def _weights(world: Cluster) -> dict[str, int]:
    route = world.kube.get("httproutes", NS, "m")
    assert route is not None
    [rule] = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/v2/models/m"}}]
    return {ref["name"]: ref["weight"] for ref in rule["backendRefs"]}


def test_with_a_gateway_the_httproute_splits_by_weight() -> None:
    gateway = factories.config(canary={"gateway": {"name": "models", "namespace": "gateways"}})
    world, op = _serving(replicas=4, config=gateway)
    route = world.kube.get("httproutes", NS, "m")
    assert route is not None
    assert route["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                            "name": "models", "namespace": "gateways"}]
    assert _weights(world) == {"m": 100}  # always there: the Gateway's way to the model

    traffic = _start_canary(world, op)
    labels = world.deployment("m-canary")["spec"]["template"]["metadata"]["labels"]
    assert "app.kubernetes.io/instance" not in labels  # the model's Service stays the stable revision's
    assert world.kube.get("services", NS, "m-canary") is not None
    op.reconcile(NS, "m")  # the candidate is ready: its weight goes to the route
    assert _weights(world) == {"m": 75, "m-canary": 25}
    canary = _canary_status(world)
    assert (canary["mode"], canary["achievedWeight"]) == ("HTTPRoute", 25)

    _window(world, op, traffic)
    world.roll_out("m-canary")
    op.reconcile(NS, "m")
    assert _weights(world) == {"m": 50, "m-canary": 50}
    _window(world, op, traffic, candidate_ok=10, candidate_failed=10)  # aborted
    assert _weights(world) == {"m": 100}
    assert world.kube.get("services", NS, "m-canary") is None
