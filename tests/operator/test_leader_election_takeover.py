"""Two operator replicas with Lease election: only the leader writes (the standby's API writes stay at zero
while the leader lives); the leader is killed with SIGKILL in the middle of a rollout; the standby takes the
Lease within seconds and finishes the rollout: the model is Ready on the new package, one Deployment, no
duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.operator.cluster import (
    OperatorProcess,
    Packages,
    create_store_secret,
    get_model,
    mlmodel,
    wait_condition,
)
from tests.operator.conftest import REPO, crd
from tests.operator.factories import LOCAL_CONFIG
from tests.support.kube import Kubectl
from tests.support.ports import free_port
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore, pytest.mark.slow]
__all__ = ["crd"]

LEASE: dict[str, Any] = {"enabled": True, "leaseName": "mlmodel-operator-ha", "leaseDurationSeconds": 3,
         "renewDeadlineSeconds": 2, "retryPeriodSeconds": 0.5}
WRITES = "mlmodel_operator_api_writes_total"


@pytest.fixture
def replicas(
    crd: None, kubeconfig: Path, kubectl: Kubectl, namespace: str, s3_env: dict[str, str], tmp_path: Path
) -> Iterator[dict[str, OperatorProcess]]:
    started: dict[str, OperatorProcess] = {}

    def start(identity: str) -> OperatorProcess:
        metrics_port, health_port = free_port(), free_port()
        config: dict[str, Any] = {
            **LOCAL_CONFIG,
            "objectStore": {"endpoint": s3_env["AWS_ENDPOINT_URL"], "region": s3_env["AWS_REGION"]},
            "resync": {"intervalSeconds": 2.0, "retryDelaySeconds": 1.0},
            "leaderElection": {**LEASE, "leaseNamespace": namespace},
            "metricsPort": metrics_port,
            "healthPort": health_port,
        }
        config_file = tmp_path / f"{identity}.yaml"
        config_file.write_text(yaml.safe_dump(config))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env |= {"KUBECONFIG": str(kubeconfig), "POD_NAME": identity, "POD_NAMESPACE": namespace}
        log_file = tmp_path / f"{identity}.log"
        with open(log_file, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mlmodel_operator", "--config", str(config_file), "--namespace", namespace],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        started[identity] = OperatorProcess(proc, log_file, metrics_port, health_port)
        wait_for(started[identity].healthy, 60, f"operator {identity} to answer /healthz (log: {log_file})")
        return started[identity]

    replicas: dict[str, OperatorProcess] = {}
    replicas["a"] = start("a")
    wait_for(lambda: _holder(kubectl, namespace) == "a", 30, "a to take the Lease")
    replicas["b"] = start("b")
    try:
        yield replicas
    finally:
        # Let a live replica release the MLModels' finalizers before the namespace goes.
        kubectl.run("delete", "mlmodels", "--all", "-n", namespace, "--timeout=60s", check=False)
        for running in started.values():
            running.stop()


def _holder(kubectl: Kubectl, namespace: str) -> str | None:
    res = kubectl.run("get", "lease", str(LEASE["leaseName"]), "-n", namespace, "-o", "json", check=False)
    return json.loads(res.stdout)["spec"].get("holderIdentity") if res.returncode == 0 else None


def test_standby_takes_over_a_rollout_when_the_leader_dies(
    replicas: dict[str, OperatorProcess], kubectl: Kubectl, namespace: str, s3: Any, bucket: str,
    s3_env: dict[str, str], tmp_path: Path,
) -> None:
    a, b = replicas["a"], replicas["b"]
    create_store_secret(kubectl, namespace, s3_env)
    packages = Packages(s3, bucket, tmp_path / "packages")
    packages.folder.mkdir()
    kubectl.apply(mlmodel("m", packages.onnx("m/1", seed=1)), namespace)
    first = wait_condition(kubectl, namespace, "m", "Ready", timeout=90)
    assert a.metric(WRITES) > 0, "the leader serves the model"
    assert b.metric(WRITES) == 0, "the standby never writes while the leader holds the Lease"
    assert (a.metric("mlmodel_operator_leader"), b.metric("mlmodel_operator_leader")) == (1, 0)

    # A new revision, and the leader dies at once (SIGKILL: no release of the Lease, no clean-up).
    kubectl.run("patch", "mlmodel", "m", "-n", namespace, "--type=merge",
                "-p", json.dumps({"spec": {"source": {"uri": packages.onnx("m/2", seed=2)}}}))
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    killed = time.monotonic()
    assert b.metric(WRITES) == 0

    wait_for(lambda: _holder(kubectl, namespace) == "b", 30, "b to take over the Lease")
    took_over = time.monotonic() - killed
    assert took_over < 15, f"takeover took {took_over:.1f}s"

    def rolled_out() -> dict[str, Any] | None:
        obj = wait_condition(kubectl, namespace, "m", "Ready", timeout=60)
        new = obj["status"].get("package", {}).get("digest")
        return obj if new and new != first["status"]["package"]["digest"] else None

    done = wait_for(rolled_out, 60, "the standby to finish the rollout to the new package")
    assert b.metric(WRITES) > 0
    assert b.metric("mlmodel_operator_leader") == 1
    assert done["status"]["revision"] > first["status"]["revision"]
    deployments = kubectl.json("get", "deployments", "-n", namespace)["items"]
    assert [d["metadata"]["name"] for d in deployments] == ["m"]
    assert get_model(kubectl, namespace, "m")["status"]["observedGeneration"] == done["metadata"]["generation"]
