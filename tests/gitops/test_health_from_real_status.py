"""GitOps tools read an MLModel's health right at each moment of a real rollout: kstatus (Flux) and the
Argo CD Lua check give Current/Healthy when Ready, InProgress/Progressing while the operator has not observed
the latest generation or a rollout is under way, and Failed/Degraded when the model is Stalled. Every status
object comes from the real operator on the local cluster."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.gitops.health import argocd, kstatus
from tests.operator.cluster import OperatorProcess, Packages, get_model, mlmodel, wait_condition
from tests.support.kube import Kubectl

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore]

AGREE = {"Current": "Healthy", "InProgress": "Progressing", "Failed": "Degraded"}


def _read(obj: dict[str, Any], expected: str) -> str:
    ks = kstatus(obj)
    argo, message = argocd(obj)
    status = json.dumps(obj.get("status", {}), indent=1)
    assert ks == expected, f"kstatus says {ks}, expected {expected}; status: {status}"
    assert argo == AGREE[expected], f"Argo CD Lua says {argo} ({message}), expected {AGREE[expected]}"
    return message


def test_health_at_each_moment(
    operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str, packages: Packages
) -> None:
    ns = model_namespace
    kubectl.apply(mlmodel("m", packages.onnx("m/1")), ns)
    ready = wait_condition(kubectl, ns, "m", "Ready", timeout=90)
    _read(ready, "Current")

    # The operator has not yet observed a new generation: not Current, whatever the conditions say.
    lagging = copy.deepcopy(ready)
    lagging["metadata"]["generation"] += 1
    _read(lagging, "InProgress")

    # A rollout whose pods never become ready: Reconciling while it is under way.
    kubectl.run("patch", "mlmodel", "m", "-n", ns, "--type=merge",
                "-p", json.dumps({"spec": {"podMetadata": {"labels": {"mlmodel.io/simulate": "never-ready"}}}}))
    rolling = wait_condition(kubectl, ns, "m", "Reconciling", timeout=60)
    _read(rolling, "InProgress")

    # A package that fails validation: Stalled until the spec changes; the message reaches Argo CD.
    kubectl.run("patch", "mlmodel", "m", "-n", ns, "--type=merge",
                "-p", json.dumps({"spec": {"source": {"uri": packages.digest_mismatch("m/2")}}}))
    stalled = wait_condition(kubectl, ns, "m", "Stalled", reason="DigestMismatch", timeout=60)
    message = _read(stalled, "Failed")
    assert "DigestMismatch" in message
    assert "sha256" in message

    # Before any status at all, Argo CD waits. (kstatus calls a resource without status Current: its generic
    # rule. That is why the operator's first pass writes observedGeneration and Reconciling at once.)
    fresh = get_model(kubectl, ns, "m")
    fresh.pop("status")
    assert argocd(fresh)[0] == "Progressing"
