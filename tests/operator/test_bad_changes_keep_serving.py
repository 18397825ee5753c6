"""A serving model whose spec is changed to something that cannot be served: digest mismatch, missing
manifest, wrong credentials, unknown node pool, unsupported (pickle) format, a zip with a `../` entry.
Each gives its own Stalled reason and a message that says what is wrong, a Warning event, Ready=False,
and the Deployment that was serving keeps serving, unchanged, through several resyncs. Credentials never
show in status or events."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.operator.cluster import OperatorProcess, Packages, get_model, mlmodel, wait_condition
from tests.support.kube import Kubectl
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore]

WRONG_SECRET_VALUE = "wrong-secret-value-f00d"

# case -> (the spec patch, built from the packages and kubectl; expected reason; message fragment)
Breaker = Callable[[Packages, Kubectl, str], dict[str, Any]]


def _uri(uri: str) -> dict[str, Any]:
    return {"source": {"uri": uri}}


def _wrong_credentials(packages: Packages, kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    kubectl.run("create", "secret", "generic", "wrong-s3", "-n", namespace,
                "--from-literal=AWS_ACCESS_KEY_ID=nobody",
                f"--from-literal=AWS_SECRET_ACCESS_KEY={WRONG_SECRET_VALUE}")
    return {"source": {"credentialsSecret": "wrong-s3"}}


CASES: dict[str, tuple[Breaker, str, str]] = {
    "digest-mismatch": (lambda p, k, n: _uri(p.digest_mismatch("m/2")), "DigestMismatch",
                        "model.onnx: sha256 expected"),
    "missing-manifest": (lambda p, k, n: _uri(p.without_manifest("m/2")), "PackageNotFound",
                         "deployment_manifest.json not found"),
    "wrong-credentials": (_wrong_credentials, "AccessDenied", "access denied"),
    "unknown-node-pool": (lambda p, k, n: {"nodePool": "tpu-v5"}, "UnknownNodePool", "'tpu-v5'"),
    "unsupported-format": (lambda p, k, n: _uri(p.joblib("m/2")), "FormatUnsupported", "'joblib'"),
    "unsafe-zip": (lambda p, k, n: _uri(p.zip_with_parent_entry("m/unsafe.zip")), "UnsafeArchive", "../evil.txt"),
}


def _deployment(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    result: dict[str, Any] = kubectl.json("get", "deployment", "m", "-n", namespace)
    return result


@pytest.mark.parametrize("case", list(CASES))
def test_bad_change_stalls_and_the_old_revision_keeps_serving(
    case: str, operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str, packages: Packages
) -> None:
    namespace = model_namespace
    breaker, reason, fragment = CASES[case]
    kubectl.apply(mlmodel("m", packages.onnx("m/1"), nodePool="cpu", replicas=2), namespace)
    serving = wait_condition(kubectl, namespace, "m", "Ready", reason="Serving")
    before = _deployment(kubectl, namespace)

    patch = json.dumps({"spec": breaker(packages, kubectl, namespace)})
    kubectl.run("patch", "mlmodel", "m", "-n", namespace, "--type=merge", "-p", patch)
    model = wait_condition(kubectl, namespace, "m", "Stalled", reason=reason)

    conditions = {c["type"]: c for c in model["status"]["conditions"]}
    assert fragment in conditions["Stalled"]["message"]
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == ("False", reason)
    assert conditions["Reconciling"]["status"] == "False"
    assert conditions["Available"]["status"] == "True"
    assert model["status"]["revision"] == serving["status"]["revision"]
    assert model["status"]["package"] == serving["status"]["package"]

    # Several resync passes later the Deployment is exactly as it was and still serving.
    passes = operator.metric("mlmodel_operator_reconcile_total")
    wait_for(lambda: operator.metric("mlmodel_operator_reconcile_total") >= passes + 3, 30, "three more passes")
    after = _deployment(kubectl, namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    assert after["status"]["availableReplicas"] == 2

    events = kubectl.json("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=m")["items"]
    warnings = [e for e in events if e["type"] == "Warning" and e["reason"] == reason]
    assert len(warnings) == 1, [(e["reason"], e["message"]) for e in events]
    assert fragment in warnings[0]["message"]
    everything = json.dumps([get_model(kubectl, namespace, "m"), events])
    assert WRONG_SECRET_VALUE not in everything
