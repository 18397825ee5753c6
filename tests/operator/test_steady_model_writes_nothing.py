"""A steady model causes no writes: over a minute of resyncs (every 2 s) the local cluster's audit log
records no write to an MLModel (or its status), Deployment or Service in the model's namespace by any
client (no-op patches included, which leave resourceVersion alone), the MLModel, Deployment and Service
keep their resourceVersion, and the operator counts no writes of its own. On a cluster this project did
not start there is no audit log: the API server's apiserver_request_total stands in for it, which has no
namespace label (another client writing MLModels, Deployments or Services meanwhile shows up too).
Each resync validates the package again (listing, manifest, metadata) and recognizes its digest from the
model's history: no file is hashed again, not even looked up in the digest cache."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.operator.cluster import OperatorProcess, Packages, mlmodel, wait_condition
from tests.support.audit import AuditLog
from tests.support.kube import Kubectl
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore, pytest.mark.slow]

# DELETE is left out: the operator never deletes (the garbage collector does), and the namespace
# controller may be deleting other tests' namespaces meanwhile.
WRITE_VERBS = {"PATCH", "UPDATE", "APPLY", "POST"}
RESOURCES = {"mlmodels", "deployments", "services"}


def _counted_writes(kubectl: Kubectl) -> dict[tuple[str, str, str], float]:
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
    operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str, packages: Packages,
    audit_log: AuditLog | None,
) -> None:
    namespace = model_namespace
    applied = audit_log.mark() if audit_log else 0
    kubectl.apply(mlmodel("steady", packages.onnx("steady/1"), nodePool="cpu", replicas=2), namespace)
    wait_condition(kubectl, namespace, "steady", "Ready", reason="Serving")
    # Let the rollout's last writes settle: the pass that wrote Ready may still be posting its event when the
    # status is seen, so the model is steady once two whole passes begun after a reading write nothing.
    def two_passes_write_nothing() -> bool:
        writes = operator.metric("mlmodel_operator_api_writes_total")
        passes = operator.metric("mlmodel_operator_reconcile_total")
        wait_for(lambda: operator.metric("mlmodel_operator_reconcile_total") >= passes + 3, 20, "three passes")
        return operator.metric("mlmodel_operator_api_writes_total") == writes

    wait_for(two_passes_write_nothing, 60, "two passes that write nothing")
    writes = operator.metric("mlmodel_operator_api_writes_total")

    mark = audit_log.mark() if audit_log else 0
    before, versions = _counted_writes(kubectl), _versions(kubectl, namespace)
    assert set(versions) == {"MLModel", "Deployment", "Service"}
    passes = operator.metric("mlmodel_operator_reconcile_total")
    reused = operator.metric("mlmodel_operator_package_validations_total", result="reused")
    hashed = operator.metric("mlmodel_operator_package_validations_total", result="valid")
    lookups = operator.metric("mlmodel_operator_digest_cache_lookups_total")
    # A minute of resyncs at a 2 s interval: at least 25 passes over the model.
    wait_for(lambda: operator.metric("mlmodel_operator_reconcile_total") >= passes + 25, 90, "25 resync passes")

    if audit_log:
        writes_seen = audit_log.writes(since=mark, namespace=namespace)
        assert not writes_seen, "writes during the steady minute:\n" + "\n".join(map(str, writes_seen))
        # Over the model's whole life, the operator wrote the MLModel object itself (not its status) only
        # to add its finalizer and to record the spec it handled: status changes (a rollout starting and
        # ending) are not spec changes, and must not run the update handler or rewrite kopf's annotations.
        own = [w for w in audit_log.writes(since=applied, namespace=namespace)
               if w.resource == "mlmodels" and w.verb != "create"]
        assert len(own) <= 2, "writes to the MLModel object itself:\n" + "\n".join(map(str, own))
    else:
        after = _counted_writes(kubectl)
        changed = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
        assert changed == {}, f"writes during the steady minute: {changed}"
    assert _versions(kubectl, namespace) == versions
    assert operator.metric("mlmodel_operator_api_writes_total") == writes
    # Every pass validated the package again and recognized its digest: nothing was hashed again.
    assert operator.metric("mlmodel_operator_package_validations_total", result="reused") >= reused + 25
    assert operator.metric("mlmodel_operator_package_validations_total", result="valid") == hashed
    assert operator.metric("mlmodel_operator_digest_cache_lookups_total") == lookups
