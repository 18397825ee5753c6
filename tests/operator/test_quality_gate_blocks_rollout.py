"""spec.qualityGate against a real operator, API server and object store: a package whose training metrics
(metadata.json training.metrics) meet the gate serves; a new package below a minimum, above a maximum or
without a metric the gate names is Stalled with reason QualityGateFailed naming metric, value and bound (also
PackageValid=False and one Warning event), and the serving Deployment is never touched, through several
resyncs; a first revision that fails the gate never gets a Deployment. status.quality (and `kubectl get mlm -o wide`)
shows the gate and the examples of the desired revision, written once: a steady model keeps its resourceVersion."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mlmodel_runtime.packing import QualityInputs, pack

from tests.operator.cluster import OperatorProcess, Packages, get_model, mlmodel, wait_condition
from tests.quality.packages import write_examples
from tests.support.kube import Kubectl
from tests.support.packages import build_package, make_onnx_mlp, upload_dir
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore]

GATE = {"minimums": {"accuracy": 0.9, "f1": 0.8}, "maximums": {"log_loss": 0.3}}
GOOD = {"accuracy": 0.95, "f1": 0.91, "log_loss": 0.12, "roc_auc": 0.97}


def with_metrics(packages: Packages, key: str, metrics: dict[str, Any]) -> str:
    directory = packages.folder / key.replace("/", "_")
    model = make_onnx_mlp(packages.folder / f"{key.replace('/', '_')}.onnx")
    build_package(directory, model, name="mlp", version=key.rsplit("/", 1)[-1], format="onnx",
                  training={"dataset": "transactions-2026-10", "metrics": metrics})
    return upload_dir(packages.s3, packages.bucket, key, directory)


CASES = {
    "below-minimum": ({**GOOD, "accuracy": 0.85}, "accuracy 0.85 is below the minimum 0.9"),
    "above-maximum": ({**GOOD, "log_loss": 0.45}, "log_loss 0.45 is above the maximum 0.3"),
    "missing-metric": ({k: v for k, v in GOOD.items() if k != "f1"},
                       "f1: missing from metadata.json training.metrics (the gate's minimum is 0.8)"),
}


def _deployment(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    result: dict[str, Any] = kubectl.json("get", "deployment", "m", "-n", namespace)
    return result


@pytest.mark.parametrize("case", list(CASES))
def test_a_package_outside_the_gate_stalls_and_the_deployment_is_untouched(
    case: str, operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str,
    packages: Packages,
) -> None:
    namespace = model_namespace
    metrics, fragment = CASES[case]
    kubectl.apply(mlmodel("m", with_metrics(packages, "m/1", GOOD), nodePool="cpu", replicas=2, qualityGate=GATE),
                  namespace)
    serving = wait_condition(kubectl, namespace, "m", "Ready", reason="Serving")
    before = _deployment(kubectl, namespace)

    patch = json.dumps({"spec": {"source": {"uri": with_metrics(packages, "m/2", metrics)}}})
    kubectl.run("patch", "mlmodel", "m", "-n", namespace, "--type=merge", "-p", patch)
    model = wait_condition(kubectl, namespace, "m", "Stalled", reason="QualityGateFailed")
    conditions = {c["type"]: c for c in model["status"]["conditions"]}
    assert fragment in conditions["Stalled"]["message"], conditions["Stalled"]
    assert (conditions["PackageValid"]["status"], conditions["PackageValid"]["reason"]) == ("False",
                                                                                          "QualityGateFailed")
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == ("False", "QualityGateFailed")
    assert model["status"]["revision"] == serving["status"]["revision"]
    assert serving["status"]["quality"] == {"revision": 1, "examples": "NoExamples", "gate": "Passed"}
    assert model["status"]["quality"] == {"examples": "NotRun", "gate": "Failed"}

    passes = operator.metric("mlmodel_operator_reconcile_total")
    wait_for(lambda: operator.metric("mlmodel_operator_reconcile_total") >= passes + 3, 30, "three more passes")
    after = _deployment(kubectl, namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    assert after["status"]["availableReplicas"] == 2
    events = kubectl.json("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=m")["items"]
    warnings = [e for e in events if e["type"] == "Warning" and e["reason"] == "QualityGateFailed"]
    assert len(warnings) == 1, [(e["reason"], e["message"]) for e in events]
    assert fragment in warnings[0]["message"]


def test_a_first_revision_outside_the_gate_gets_no_deployment(
    operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str, packages: Packages,
) -> None:
    uri = with_metrics(packages, "first/1", {"accuracy": 0.5})
    kubectl.apply(mlmodel("m", uri, nodePool="cpu", qualityGate={"minimums": {"accuracy": 0.9}}), model_namespace)
    model = wait_condition(kubectl, model_namespace, "m", "Stalled", reason="QualityGateFailed")
    stalled = next(c for c in model["status"]["conditions"] if c["type"] == "Stalled")
    assert "accuracy 0.5 is below the minimum 0.9" in stalled["message"]
    found = kubectl.run("get", "deployment", "m", "-n", model_namespace, check=False)
    assert found.returncode != 0
    assert "NotFound" in found.stderr
    # Lowering the gate (a spec change) lets the same package through.
    patch = json.dumps({"spec": {"qualityGate": {"minimums": {"accuracy": 0.4}}}})
    kubectl.run("patch", "mlmodel", "m", "-n", model_namespace, "--type=merge", "-p", patch)
    wait_condition(kubectl, model_namespace, "m", "Ready", reason="Serving")


def test_status_shows_examples_and_gate_once(
    operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str, packages: Packages,
) -> None:
    directory = packages.folder / "checked"
    directory.mkdir()
    make_onnx_mlp(directory / "model.onnx")
    (directory / "metadata.json").write_text(json.dumps({"training": {"metrics": GOOD}}))
    pack(directory, name="mlp", version="1", quality=QualityInputs(examples=write_examples(packages.folder / "e.json")))
    uri = upload_dir(packages.s3, packages.bucket, "checked/1", directory)
    kubectl.apply(mlmodel("m", uri, nodePool="cpu", qualityGate=GATE), model_namespace)
    model = wait_condition(kubectl, model_namespace, "m", "Ready", reason="Serving")
    # On the simulated nodes the pods are Ready without a runtime: the operator's reading is that a revision that
    # served ran its examples (the runtime reports ready only after they pass).
    assert model["status"]["quality"] == {"revision": 1, "examples": "Passed", "gate": "Passed"}
    assert model["status"]["package"]["examples"] is True
    wide = kubectl.run("get", "mlm", "m", "-n", model_namespace, "-o", "wide").stdout.splitlines()
    header, row = wide[0].split(), wide[1].split()
    assert dict(zip(header, row, strict=False))["EXAMPLES"] == "Passed", wide
    assert dict(zip(header, row, strict=False))["GATE"] == "Passed", wide
    # Written once: further passes leave the MLModel as it is.
    version = get_model(kubectl, model_namespace, "m")["metadata"]["resourceVersion"]
    passes = operator.metric("mlmodel_operator_reconcile_total")
    wait_for(lambda: operator.metric("mlmodel_operator_reconcile_total") >= passes + 3, 30, "three more passes")
    assert get_model(kubectl, model_namespace, "m")["metadata"]["resourceVersion"] == version
