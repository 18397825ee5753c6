"""Manual rollbacks that keep the operator away from spec: spec.rollbackTo {revision: 1} brings revision 1 back
(its own ReplicaSet, no validation, nothing hashed), a revision no longer in history is refused with a clear
message and nothing changes, removing rollbackTo follows spec.source again (revision 2, its number reused); a
revert of spec.source to the first package (what a git revert does) is recognized as revision 1 by its digest:
same number, same ReplicaSet, no file hashed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.operator.cluster import OperatorProcess, Packages, get_model, mlmodel, wait_condition
from tests.support.kube import Kubectl, condition
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore]


def _patch(kubectl: Kubectl, namespace: str, spec: dict[str, Any]) -> None:
    kubectl.run("patch", "mlmodel", "m", "-n", namespace, "--type=merge", "-p", json.dumps({"spec": spec}))


def _serving(kubectl: Kubectl, namespace: str, revision: int) -> dict[str, Any]:
    """Wait until the latest generation is observed, Ready, serving `revision` and nothing is rolling out."""

    def check() -> dict[str, Any] | None:
        model = get_model(kubectl, namespace, "m")
        status = model.get("status", {})
        ready = condition(model, "Ready") or {}
        done = (status.get("observedGeneration") == model["metadata"]["generation"] and ready.get("status") == "True"
                and status.get("revision") == revision and "rollout" not in status)
        return model if done else None

    result: dict[str, Any] = wait_for(check, 60, f"revision {revision} to serve")
    return result


def _replicaset_uids(kubectl: Kubectl, namespace: str) -> dict[str, str]:
    items = kubectl.json("get", "rs", "-n", namespace, "-l", "app.kubernetes.io/instance=m")["items"]
    return {rs["metadata"]["labels"]["serving.mlmodel.io/revision"]: rs["metadata"]["uid"] for rs in items}


def _hashing(operator: OperatorProcess) -> tuple[float, float, float]:
    """(full validations, digest cache hits, misses): none of them moves when nothing is hashed."""
    return (operator.metric("mlmodel_operator_package_validations_total", result="valid"),
            operator.metric("mlmodel_operator_digest_cache_lookups_total", result="hit"),
            operator.metric("mlmodel_operator_digest_cache_lookups_total", result="miss"))


def _outcomes(model: dict[str, Any]) -> list[tuple[int, str]]:
    return [(e["revision"], e["outcome"]) for e in model["status"]["history"]]


def _two_revisions(kubectl: Kubectl, namespace: str, packages: Packages) -> tuple[str, dict[str, str]]:
    first = packages.onnx("m/1", seed=1)
    kubectl.apply(mlmodel("m", first, nodePool="cpu", replicas=2), namespace)
    _serving(kubectl, namespace, 1)
    _patch(kubectl, namespace, {"source": {"uri": packages.onnx("m/2", seed=2)}})
    model = _serving(kubectl, namespace, 2)
    assert _outcomes(model) == [(1, "Superseded"), (2, "Serving")]
    return first, _replicaset_uids(kubectl, namespace)


def test_rollback_to_pins_an_earlier_revision_until_removed(
    operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str, packages: Packages
) -> None:
    namespace = model_namespace
    _, uids = _two_revisions(kubectl, namespace, packages)
    hashing = _hashing(operator)

    _patch(kubectl, namespace, {"rollbackTo": {"revision": 1}})
    model = _serving(kubectl, namespace, 1)
    assert model["status"]["desiredRevision"] == 1
    assert _outcomes(model) == [(1, "Serving"), (2, "RolledBack")]
    assert _replicaset_uids(kubectl, namespace)["1"] == uids["1"]
    ready = condition(model, "Ready")
    assert ready is not None
    assert "spec.rollbackTo" in ready["message"]
    # Served from history: no validation hashed anything (not even a digest cache lookup).
    assert _hashing(operator) == hashing

    # A revision that is not (or no longer) in the history is refused; the Deployment stays as it is.
    deployment = kubectl.json("get", "deployment", "m", "-n", namespace)
    _patch(kubectl, namespace, {"rollbackTo": {"revision": 7}})
    refused = wait_condition(kubectl, namespace, "m", "Stalled", reason="RevisionNotInHistory")
    stalled = condition(refused, "Stalled")
    assert stalled is not None
    assert "spec.rollbackTo.revision 7 is not in status.history (kept: 1, 2)" in stalled["message"]
    after = kubectl.json("get", "deployment", "m", "-n", namespace)
    assert after["metadata"]["generation"] == deployment["metadata"]["generation"]
    assert refused["status"]["revision"] == 1

    # Without rollbackTo, spec.source rules again: revision 2, recognized by its template (same number).
    kubectl.run("patch", "mlmodel", "m", "-n", namespace, "--type=merge", "-p", '{"spec": {"rollbackTo": null}}')
    model = _serving(kubectl, namespace, 2)
    assert _outcomes(model) == [(1, "Superseded"), (2, "Serving")]
    assert _replicaset_uids(kubectl, namespace) == uids
    assert _hashing(operator) == hashing


def test_reverting_the_spec_is_recognized_as_the_earlier_revision(
    operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str, packages: Packages
) -> None:
    namespace = model_namespace
    first, uids = _two_revisions(kubectl, namespace, packages)
    hashing = _hashing(operator)
    reused = operator.metric("mlmodel_operator_package_validations_total", result="reused")

    _patch(kubectl, namespace, {"source": {"uri": first}})
    model = _serving(kubectl, namespace, 1)
    assert model["status"]["desiredRevision"] == 1
    assert _outcomes(model) == [(1, "Serving"), (2, "RolledBack")]
    assert _replicaset_uids(kubectl, namespace) == uids
    # The package was checked (listing, manifest, metadata) and recognized by its digest: no file hashed.
    assert _hashing(operator) == hashing
    assert operator.metric("mlmodel_operator_package_validations_total", result="reused") > reused
