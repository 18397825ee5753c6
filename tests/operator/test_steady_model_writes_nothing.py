"""A steady model causes no writes: over a minute of resyncs (every 2 s) the API server counts no PATCH,
UPDATE, APPLY or POST to mlmodels (and their status), deployments or services (its apiserver_request_total
metric; deployments/status is left out, the Deployment controller writes it for every Deployment in the
cluster; the metric has no namespace label, so another client applying Deployments to the same cluster
meanwhile would show up too), the MLModel, Deployment and Service keep their resourceVersion, and the
operator counts no writes of its own. Each resync validates the package again (listing, manifest, metadata)
and recognizes its digest from the model's history: no file is hashed again, not even looked up in the digest
cache."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.operator.cluster import OperatorProcess, Packages, mlmodel, wait_condition
from tests.support.kube import Kubectl
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore, pytest.mark.slow]

# DELETE is left out: the operator never deletes (the garbage collector does), and the namespace
# controller may be deleting other tests' namespaces meanwhile.
WRITE_VERBS = {"PATCH", "UPDATE", "APPLY", "POST"}
RESOURCES = {"mlmodels", "deployments", "services"}


def _writes(kubectl: Kubectl) -> dict[tuple[str, str, str], float]:
    text = kubectl.run("get", "--raw", "/metrics").stdout
    counts: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            labels = sample.labels
            ours = labels.get("resource") == "mlmodels" or labels.get("subresource", "") == ""
            if (sample.name == "apiserver_request_total" and labels.get("verb") in WRITE_VERBS
                    and labels.get("resource") in RESOURCES and ours):
                key = (labels["resource"], labels.get("subresource", ""), labels["verb"])
                counts[key] = counts.get(key, 0) + sample.value
    return counts


def _versions(kubectl: Kubectl, namespace: str) -> dict[str, str]:
    items = kubectl.json("get", "mlmodel,deployment,service", "-n", namespace, "-l", "", "--field-selector",
                         "metadata.name=steady")["items"]
    return {item["kind"]: item["metadata"]["resourceVersion"] for item in items}


def test_steady_model_causes_no_writes(
    operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str, packages: Packages
) -> None:
    namespace = model_namespace
    kubectl.apply(mlmodel("steady", packages.onnx("steady/1"), nodePool="cpu", replicas=2), namespace)
    wait_condition(kubectl, namespace, "steady", "Ready", reason="Serving")
    # Let the rollout's last events settle: the status is final once a resync finds nothing to write.
    writes = operator.metric("mlmodel_operator_api_writes_total")
    passes = operator.metric("mlmodel_operator_reconcile_total")
    wait_for(lambda: operator.metric("mlmodel_operator_reconcile_total") >= passes + 2, 20, "two resyncs")
    assert operator.metric("mlmodel_operator_api_writes_total") == writes

    before, versions = _writes(kubectl), _versions(kubectl, namespace)
    assert set(versions) == {"MLModel", "Deployment", "Service"}
    passes = operator.metric("mlmodel_operator_reconcile_total")
    reused = operator.metric("mlmodel_operator_package_validations_total", result="reused")
    hashed = operator.metric("mlmodel_operator_package_validations_total", result="valid")
    lookups = operator.metric("mlmodel_operator_digest_cache_lookups_total")
    # A minute of resyncs at a 2 s interval: at least 25 passes over the model.
    wait_for(lambda: operator.metric("mlmodel_operator_reconcile_total") >= passes + 25, 90, "25 resync passes")

    after = _writes(kubectl)
    changed = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    assert changed == {}, f"writes during the steady minute: {changed}"
    assert _versions(kubectl, namespace) == versions
    assert operator.metric("mlmodel_operator_api_writes_total") == writes
    # Every pass validated the package again and recognized its digest: nothing was hashed again.
    assert operator.metric("mlmodel_operator_package_validations_total", result="reused") >= reused + 25
    assert operator.metric("mlmodel_operator_package_validations_total", result="valid") == hashed
    assert operator.metric("mlmodel_operator_digest_cache_lookups_total") == lookups
