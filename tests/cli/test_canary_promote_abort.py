"""`mlmodel promote` and `mlmodel abort` set their annotation (serving.mlmodel.io/promote, /abort) to a new value
with a merge patch of that one annotation: spec, status and the other annotations stay as they were; each call
sets a value not used before; each prints what happens next (the next step's weight, or the promotion after the
last step; the abort's rollback). Both refuse, with reason NoCanaryRunning, exit 1 and nothing written, a model
without status.canary and one whose canary is not Progressing (Aborted, Promoting). `mlmodel history` shows the
canary: the candidate revision as Canary, a line with its phase, step, weights and last analysis, and an aborted
revision's reason CanaryAborted with the judge's figures. Runs against the real API server with the real CRD; the
status is written through the status subresource, in a namespace no operator serves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.operator.conftest import crd
from tests.support.kube import Kubectl

pytestmark = pytest.mark.cluster
__all__ = ["crd"]

MLMODEL = Path(sys.executable).parent / "mlmodel"
PROMOTE = "serving.mlmodel.io/promote"
ABORT = "serving.mlmodel.io/abort"


def _entry(revision: int, outcome: str, **extra: str) -> dict[str, Any]:
    uri = f"s3://models/m/{revision}/"
    entry = {"revision": revision, "uri": uri, "digest": "sha256:" + str(revision) * 64, "format": "onnx",
             "size": 2048, "createdAt": f"2026-11-22T1{revision}:00:00Z", "fingerprint": f"f{revision}",
             "settings": {"source": {"uri": uri, "credentialsSecret": "models-s3"}, "protocol": "http"}}
    return {**entry, "outcome": outcome, **extra} if outcome else entry


ANALYSIS = {"verdict": "Pass", "message": "error ratio 0% over 120 requests; p99 1.05x the stable revision's",
            "time": "2026-11-22T13:01:00Z", "candidateRequests": 120, "candidateErrors": 0,
            "candidateP99Seconds": 0.0126, "stableRequests": 480, "stableP99Seconds": 0.012}
CANARY = {"revision": 3, "stableRevision": 1, "phase": "Progressing", "step": 1, "steps": 3, "weight": 25,
          "achievedWeight": 20, "mode": "ReplicaRatio", "stableReplicas": 4, "candidateReplicas": 1,
          "stepStartedAt": "2026-11-22T13:00:00Z", "passedWindows": 1, "analysis": ANALYSIS,
          "message": "step 1 waits for mlmodel promote", "lastPromote": "before"}
ABORTED_MESSAGE = "error ratio 10% > 1% over 200 requests"
HISTORY = [_entry(1, "Serving"), _entry(2, "Failed", reason="CanaryAborted", message=ABORTED_MESSAGE)]
SPEC = {"source": {"uri": "s3://models/m/3/", "credentialsSecret": "models-s3"}, "replicas": 4,
        "rollout": {"strategy": "Canary", "canary": {"steps": [{"weight": 25, "untilPromoted": True},
                                                               {"weight": 50, "pauseSeconds": 300},
                                                               {"weight": 75}]}}}


def _cli(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MLMODEL), *args, "--kubeconfig", str(kubeconfig)],
                          capture_output=True, text=True, timeout=60)


def _model(kubectl: Kubectl, namespace: str, canary: dict[str, Any] | None) -> dict[str, Any]:
    """MLModel m with the canary strategy, an annotation of its own, and the status the operator would write."""
    body = {"apiVersion": "serving.mlmodel.io/v1alpha1", "kind": "MLModel",
            "metadata": {"name": "m", "annotations": {"team": "risk"}}, "spec": SPEC}
    kubectl.apply(yaml.safe_dump(body), namespace)
    status: dict[str, Any] = {"revision": 1, "desiredRevision": 3, "history": HISTORY,
                              "rollout": _entry(3, ""), "observedGeneration": 1}
    if canary is not None:
        status["canary"] = canary
    kubectl.run("patch", "mlmodel", "m", "-n", namespace, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": status}))
    got: dict[str, Any] = kubectl.json("get", "mlmodel", "m", "-n", namespace)
    assert got["status"].get("canary") == canary, "the CRD keeps status.canary as written"
    return got


def _annotations(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj["metadata"].get("annotations") or {})


@pytest.mark.parametrize(("verb", "key"), [("promote", PROMOTE), ("abort", ABORT)])
def test_sets_only_its_annotation_to_a_new_value(
    crd: None, kubectl: Kubectl, kubeconfig: Path, namespace: str, verb: str, key: str
) -> None:
    before = _model(kubectl, namespace, CANARY)
    res = _cli(kubeconfig, verb, "m", "-n", namespace, "--output", "json")
    assert res.returncode == 0, res.stdout + res.stderr
    data = json.loads(res.stdout)
    after = kubectl.json("get", "mlmodel", "m", "-n", namespace)
    assert _annotations(after) == {**_annotations(before), key: data["value"]}
    assert after["spec"] == before["spec"], "nothing in spec: a GitOps tool that owns spec has nothing to revert"
    assert after["status"] == before["status"], "the CLI never writes status"
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert (data["annotation"], data["revision"], data["step"], data["steps"]) == (key, 3, 1, 3)

    again = _cli(kubeconfig, verb, "m", "-n", namespace)
    assert again.returncode == 0, again.stdout + again.stderr
    value = _annotations(kubectl.json("get", "mlmodel", "m", "-n", namespace))[key]
    assert value != data["value"], "each call sets a new value: the operator acts on a new value once"
    assert f"{key}={value}" in again.stdout


def test_promote_and_abort_say_what_happens_next(
    crd: None, kubectl: Kubectl, kubeconfig: Path, namespace: str
) -> None:
    _model(kubectl, namespace, CANARY)
    promoted = _cli(kubeconfig, "promote", "m", "-n", namespace)
    assert promoted.returncode == 0, promoted.stderr
    assert "step 1/3 ends at the operator's next pass; step 2/3 sends 50% of the traffic to revision 3" in (
        promoted.stdout)

    at_last = {**CANARY, "step": 3, "weight": 75}
    kubectl.run("patch", "mlmodel", "m", "-n", namespace, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"canary": at_last}}))
    last = _cli(kubeconfig, "promote", "m", "-n", namespace, "--output", "json")
    assert last.returncode == 0, last.stderr
    assert "the last step (3/3) ends at the operator's next pass and revision 3 is promoted" in (
        json.loads(last.stdout)["next"])

    aborted = _cli(kubeconfig, "abort", "m", "-n", namespace)
    assert aborted.returncode == 0, aborted.stderr
    assert "revision 3 is recorded Failed (reason CanaryAborted)" in aborted.stdout
    assert "revision 1 serves with all its replicas" in aborted.stdout


@pytest.mark.parametrize("canary", [None, {**CANARY, "phase": "Aborted"}, {**CANARY, "phase": "Promoting"}],
                         ids=["no-canary", "aborted", "promoting"])
@pytest.mark.parametrize("verb", ["promote", "abort"])
def test_refused_unless_a_canary_is_progressing(
    crd: None, kubectl: Kubectl, kubeconfig: Path, namespace: str, verb: str, canary: dict[str, Any] | None
) -> None:
    before = _model(kubectl, namespace, canary)
    res = _cli(kubeconfig, verb, "m", "-n", namespace, "--output", "json")
    assert res.returncode == 1, res.stdout + res.stderr
    data = json.loads(res.stdout)
    assert data["reason"] == "NoCanaryRunning"
    assert f"nothing to {verb}" in data["message"]
    if canary is not None:
        assert f"revision 3 is {canary['phase']}, not Progressing" in data["message"]
    after = kubectl.json("get", "mlmodel", "m", "-n", namespace)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], "nothing written"

    text = _cli(kubeconfig, verb, "m", "-n", namespace)
    assert text.returncode == 1
    assert "NoCanaryRunning" in text.stderr


def test_history_shows_the_canary_and_its_outcomes(
    crd: None, kubectl: Kubectl, kubeconfig: Path, namespace: str
) -> None:
    _model(kubectl, namespace, CANARY)
    data = json.loads(_cli(kubeconfig, "history", "m", "-n", namespace, "--output", "json").stdout)
    assert data["canary"] == CANARY

    res = _cli(kubeconfig, "history", "m", "-n", namespace)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert any("CanaryAborted: " + ABORTED_MESSAGE in line for line in lines), res.stdout
    [candidate] = [line for line in lines if line.lstrip("│ ").startswith("3 ")]
    assert "Canary" in candidate, "the revision under a canary is shown as Canary, not RollingOut"
    assert ("canary: revision 3 (stable: revision 1) Progressing, step 1/3, weight 25% (achieved 20%, "
            "ReplicaRatio): step 1 waits for mlmodel promote") in lines
    assert (f"  last analysis Pass at 2026-11-22T13:01:00Z: {ANALYSIS['message']} (candidate 120 requests, "
            "0 failed, p99 12.6ms; stable 480 requests, p99 12ms)") in lines
