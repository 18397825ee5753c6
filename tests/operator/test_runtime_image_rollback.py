"""An operator upgraded to a broken runtime image does not take down the models it serves.

The new image changes every model's pod template, so each model gets a new revision, recorded with the image it
was rendered with. Here that revision crash-loops (kwok's `:simulate-crashloop` image tag, hack/cluster/
kwok-stages.yaml), and the automatic rollback renders the last revision that served *with its recorded image*:
revision 1's own ReplicaSet scales back up, and the failed revision stays failed. An operator with a fixed image
then rolls out a new revision, not a retry of the failed one.
"""

from __future__ import annotations

import secrets
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
from tests.operator.factories import LOCAL_CONFIG
from tests.support.kube import Kubectl
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore, pytest.mark.slow]

SERVING = LOCAL_CONFIG["runtimeImages"]["onnx"]
BROKEN = "registry.invalid/mlmodel/runtime:simulate-crashloop"
FIXED = "registry.invalid/mlmodel/runtime:0.2.0"


def _images(image: str) -> dict[str, Any]:
    return {"runtimeImages": {**LOCAL_CONFIG["runtimeImages"], "onnx": image}}


def _replicasets(kubectl: Kubectl, namespace: str) -> dict[str, dict[str, Any]]:
    items = kubectl.json("get", "rs", "-n", namespace, "-l", "app.kubernetes.io/instance=m")["items"]
    return {rs["metadata"]["labels"]["serving.mlmodel.io/revision"]: rs for rs in items}


def _deployment_image(kubectl: Kubectl, namespace: str) -> str:
    deployment = kubectl.json("get", "deployment", "m", "-n", namespace)
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def test_broken_runtime_image_rolls_back_to_the_image_that_served(
    crd: None, kubectl: Kubectl, kubeconfig: Path, s3_env: dict[str, str], packages: Packages, tmp_path: Path
) -> None:
    namespace = f"{SESSION_PREFIX}i-{secrets.token_hex(3)}"  # served by this test's operators only
    kubectl.run("create", "namespace", namespace)
    running: list[OperatorProcess] = []

    def operator(label: str, image: str) -> OperatorProcess:
        if running:
            running[-1].stop()
        started = start_operator(tmp_path / label, kubeconfig, s3_env, [namespace], config_overrides=_images(image))
        running.append(started)
        return started

    try:
        create_store_secret(kubectl, namespace, s3_env)
        operator("serving", SERVING)
        kubectl.apply(mlmodel("m", packages.onnx("image/1"), nodePool="cpu", replicas=2), namespace)
        wait_condition(kubectl, namespace, "m", "Ready", reason="Serving")
        first = _replicasets(kubectl, namespace)["1"]["metadata"]["uid"]

        # The upgrade: same spec, a broken runtime image.
        upgraded = operator("broken", BROKEN)
        wait_condition(kubectl, namespace, "m", "RolledBack", reason="CrashLoop", timeout=90)
        wait_condition(kubectl, namespace, "m", "Ready", reason="Serving")
        wait_for(lambda: _replicasets(kubectl, namespace)["1"]["status"].get("availableReplicas") == 2, 30,
                 "revision 1's ReplicaSet back at full strength")
        status = get_model(kubectl, namespace, "m")["status"]
        assert [(e["revision"], e["outcome"], e.get("reason"), e.get("image")) for e in status["history"]] == [
            (1, "Serving", None, SERVING), (2, "Failed", "CrashLoop", BROKEN)]
        assert (status["revision"], status["desiredRevision"]) == (1, 2)
        assert _deployment_image(kubectl, namespace) == SERVING
        replicasets = _replicasets(kubectl, namespace)
        assert replicasets["1"]["metadata"]["uid"] == first, "the rollback reuses revision 1's ReplicaSet"
        assert {rev: rs["spec"]["replicas"] for rev, rs in replicasets.items()} == {"1": 2, "2": 0}
        # The failed revision is not retried: more passes apply nothing.
        applies = upgraded.metric("mlmodel_operator_api_writes_total", resource="deployments")
        passes = upgraded.metric("mlmodel_operator_reconcile_total")
        wait_for(lambda: upgraded.metric("mlmodel_operator_reconcile_total") >= passes + 3, 30, "three more passes")
        assert upgraded.metric("mlmodel_operator_api_writes_total", resource="deployments") == applies

        # The fix: a new image is a new revision, rolled out and served.
        operator("fixed", FIXED)
        wait_for(lambda: get_model(kubectl, namespace, "m")["status"].get("revision") == 3, 60,
                 "revision 3 (the fixed image) to serve")
        status = wait_condition(kubectl, namespace, "m", "Ready", reason="Serving")["status"]
        assert [(e["revision"], e["outcome"], e.get("image")) for e in status["history"]] == [
            (1, "Superseded", SERVING), (2, "Failed", BROKEN), (3, "Serving", FIXED)]
        assert _deployment_image(kubectl, namespace) == FIXED
    finally:
        drop_own_namespaces(kubectl, [namespace], running)
