"""An operator killed at any point of a failing rollout converges, once started again, to the same end state as one
that never died. The kill is a fault injection (MLMODEL_OPERATOR_FAULT=POINT[:N], the process ends with
os._exit(137) as under SIGKILL), at five points: while hashing revision 2's package, right after applying revision
2's Deployment (status not written), right after posting the RolledBack warning (the status that records revision
2's failure not written), right after writing revision 2's failure (rollback not applied), right after applying the
rollback (status not written). Each point runs in its own namespace with its own operators, all at once. End state
everywhere: history 1 Serving / 2 Failed (CrashLoop), revision 1 serving from its own ReplicaSet, revision 2 scaled
to zero, one Deployment, one Service, two ReplicaSets, exactly one RolledBack warning (never lost, never doubled);
and the restarted operator applies the Deployment only as often as the point requires (never revision 2 again once
its failure was written: no retry)."""

from __future__ import annotations

import json
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.operator.cluster import (
    OperatorProcess,
    Packages,
    create_store_secret,
    drop_own_namespaces,
    get_model,
    mlmodel,
    wait_condition,
)
from tests.operator.conftest import SESSION_PREFIX, start_operator
from tests.support.kube import Kubectl
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore, pytest.mark.slow]

# point -> Deployment applies the restarted operator must make: revision 2 and the rollback; the rollback; the
# rollback; the rollback; nothing (the rollback is live and the failure written).
POINTS = {"validating:2": 2, "applied:2": 1, "warning-posted": 1, "failure-recorded": 1, "rolled-back": 0}
CRASHLOOP = {"labels": {"mlmodel.io/simulate": "crashloop"}}


def _replicasets(kubectl: Kubectl, namespace: str) -> dict[str, dict[str, Any]]:
    items = kubectl.json("get", "rs", "-n", namespace, "-l", "app.kubernetes.io/instance=m")["items"]
    return {rs["metadata"]["labels"]["serving.mlmodel.io/revision"]: rs for rs in items}


def _end_state(kubectl: Kubectl, namespace: str, operator: OperatorProcess, first_uid: str) -> dict[str, Any]:
    wait_condition(kubectl, namespace, "m", "RolledBack", reason="CrashLoop")
    wait_condition(kubectl, namespace, "m", "Ready", reason="Serving")
    wait_for(lambda: _replicasets(kubectl, namespace)["1"]["status"].get("availableReplicas") == 2, 30,
             "revision 1's ReplicaSet back at full strength")
    # A few more passes: the failed revision is not retried, nothing moves.
    passes = operator.metric("mlmodel_operator_reconcile_total")
    wait_for(lambda: operator.metric("mlmodel_operator_reconcile_total") >= passes + 3, 30, "three more passes")
    model = get_model(kubectl, namespace, "m")
    status = model["status"]
    replicasets = _replicasets(kubectl, namespace)
    events = kubectl.json("get", "events", "-n", namespace, "--field-selector",
                          "involvedObject.name=m,involvedObject.kind=MLModel")["items"]
    objects = kubectl.run("get", "deployments,services", "-n", namespace, "-o", "name").stdout.split()
    return {
        "history": [(e["revision"], e["outcome"], e.get("reason")) for e in status["history"]],
        "revision": (status["revision"], status["desiredRevision"], status.get("rollout")),
        "conditions": sorted((c["type"], c["status"], c["reason"]) for c in status["conditions"]),
        "replicasets": {rev: rs["spec"]["replicas"] for rev, rs in replicasets.items()},
        "same revision 1 ReplicaSet": replicasets["1"]["metadata"]["uid"] == first_uid,
        "objects": sorted(objects),
        "warnings": [e["reason"] for e in events if e["type"] == "Warning"],
        "deployment applies after the restart": operator.metric("mlmodel_operator_api_writes_total",
                                                                resource="deployments"),
    }


def _scenario(point: str, kubectl: Kubectl, kubeconfig: Path, s3_env: dict[str, str], packages: Packages,
              folder: Path) -> dict[str, Any]:
    stem = point.split(":")[0]
    namespace = f"{SESSION_PREFIX}k-{stem}-{secrets.token_hex(2)}"
    kubectl.run("create", "namespace", namespace)
    running: list[OperatorProcess] = []
    try:
        create_store_secret(kubectl, namespace, s3_env)
        faulty = start_operator(folder / f"{stem}-faulty", kubeconfig, s3_env, [namespace],
                                env={"MLMODEL_OPERATOR_FAULT": point})
        running.append(faulty)
        kubectl.apply(mlmodel("m", packages.onnx(f"{stem}/1", seed=1), nodePool="cpu", replicas=2,
                              rollout={"strategy": "Replace"}), namespace)
        wait_condition(kubectl, namespace, "m", "Ready", reason="Serving")
        first_uid = _replicasets(kubectl, namespace)["1"]["metadata"]["uid"]

        patch = {"spec": {"source": {"uri": packages.onnx(f"{stem}/2", seed=2)}, "podMetadata": CRASHLOOP}}
        kubectl.run("patch", "mlmodel", "m", "-n", namespace, "--type=merge", "-p", json.dumps(patch))
        wait_for(lambda: faulty.proc.poll() is not None, 60, f"the operator to die at {point}")
        assert faulty.proc.returncode == 137, faulty.log_tail()
        assert f"fault injection: exiting at {stem}" in faulty.log_tail()

        again = start_operator(folder / f"{stem}-again", kubeconfig, s3_env, [namespace])
        running.append(again)
        return _end_state(kubectl, namespace, again, first_uid)
    finally:
        drop_own_namespaces(kubectl, [namespace], running)


def test_killed_at_any_point_converges_to_the_same_end_state(
    crd: None, kubectl: Kubectl, kubeconfig: Path, s3_env: dict[str, str], packages: Packages, tmp_path: Path
) -> None:
    with ThreadPoolExecutor(max_workers=len(POINTS)) as pool:
        futures = {point: pool.submit(_scenario, point, kubectl, kubeconfig, s3_env, packages, tmp_path)
                   for point in POINTS}
        ends = {point: future.result() for point, future in futures.items()}

    expected = {
        "history": [(1, "Serving", None), (2, "Failed", "CrashLoop")],
        "revision": (1, 2, None),
        "conditions": sorted([("Ready", "True", "Serving"), ("Reconciling", "False", "RolledBack"),
                              ("Stalled", "True", "RolledBack"), ("PackageValid", "True", "PackageVerified"),
                              ("Available", "True", "MinimumReplicasAvailable"), ("RolledBack", "True", "CrashLoop")]),
        "replicasets": {"1": 2, "2": 0},
        "same revision 1 ReplicaSet": True,
        "objects": ["deployment.apps/m", "service/m"],
        "warnings": ["RolledBack"],
    }
    for point, end in ends.items():
        assert end == {**expected, "deployment applies after the restart": POINTS[point]}, f"killed at {point}"
