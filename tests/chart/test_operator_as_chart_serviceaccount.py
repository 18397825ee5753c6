"""The chart's RBAC is enough: the operator runs with the chart's ServiceAccount (a kubeconfig holding only
its token) and the chart's own configuration file, watching a list of namespaces (so it has Roles there,
no ClusterRole), and takes a model through a full reconcile (Ready on the GPU pool) and an automatic
rollback, with leader election on its Lease, and without a single Forbidden from the API server; and a model with
KubernetesTokens auth and a NetworkPolicy (the reviewer's ClusterRoleBinding created under the API server's
escalation check, and gone after the model's deletion)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import Helm
from tests.operator.cluster import OperatorProcess, Packages, create_store_secret, mlmodel, wait_condition
from tests.operator.conftest import FAILURE_DETECTION, REPO, crd
from tests.support.kube import Kubectl
from tests.support.ports import free_port
from tests.support.tokens import token_kubeconfig
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore, pytest.mark.slow]
__all__ = ["crd"]
CHART = "charts/mlmodel-operator"


@pytest.fixture
def served(kubectl: Kubectl, namespace: str) -> Iterator[str]:
    name = f"{namespace}-models"
    kubectl.run("create", "namespace", name)
    wait_for(lambda: kubectl.run("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
             30, f"the default ServiceAccount of {name}")
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def operator_as_sa(
    crd: None, kubectl: Kubectl, helm: Helm, namespace: str, release: str, served: str, kubeconfig: Path,
    s3_env: dict[str, str], tmp_path: Path,
) -> Iterator[OperatorProcess]:
    helm("install", release, CHART, "-n", namespace, "--set", f"config.watch.namespaces={{{served}}}")
    sa = f"{release}-mlmodel-operator"
    assert kubectl.run("get", "clusterrole", sa, check=False).returncode != 0, "namespaced: no ClusterRole"

    # The chart's own config file, with only what differs here: this store, free ports, fast detection.
    configmap = kubectl.json("get", "configmap", f"{sa}-config", "-n", namespace)
    config: dict[str, Any] = yaml.safe_load(configmap["data"]["config.yaml"])
    assert config["leaderElection"]["leaseNamespace"] == namespace
    metrics_port, health_port = free_port(), free_port()
    config |= {
        "objectStore": {"endpoint": s3_env["AWS_ENDPOINT_URL"], "region": s3_env["AWS_REGION"]},
        "resync": {"intervalSeconds": 2.0, "retryDelaySeconds": 1.0},
        "failureDetection": FAILURE_DETECTION,
        "metricsPort": metrics_port,
        "healthPort": health_port,
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    token = kubectl.run("create", "token", sa, "-n", namespace, "--duration=1h").stdout.strip()
    sa_kubeconfig = token_kubeconfig(kubeconfig, token, tmp_path / "sa.kubeconfig")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBECONFIG"))}
    env |= {"KUBECONFIG": str(sa_kubeconfig), "POD_NAME": "operator-0", "POD_NAMESPACE": namespace}
    log_file = tmp_path / "operator.log"
    with open(log_file, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mlmodel_operator", "--config", str(tmp_path / "config.yaml")],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    running = OperatorProcess(proc, log_file, metrics_port, health_port)
    try:
        wait_for(running.healthy, 60, f"the operator to answer /healthz (log: {log_file})")
        yield running
    finally:
        kubectl.run("delete", "mlmodels", "--all", "-n", served, "--timeout=60s", check=False)
        running.stop()


def test_reconcile_and_rollback_with_the_charts_rbac(
    operator_as_sa: OperatorProcess, kubectl: Kubectl, served: str, s3: Any, bucket: str,
    s3_env: dict[str, str], tmp_path: Path,
) -> None:
    create_store_secret(kubectl, served, s3_env)
    packages = Packages(s3, bucket, tmp_path / "packages")
    packages.folder.mkdir()
    kubectl.apply(mlmodel("m", packages.onnx("m/1", seed=1), nodePool="gpu", resources={"gpu": 1}), served)
    ready = wait_condition(kubectl, served, "m", "Ready", timeout=90)
    assert ready["status"]["revision"] == 1
    pods = kubectl.json("get", "pods", "-n", served)["items"]
    assert pods
    assert all(p["spec"]["nodeName"].startswith("gpu-") for p in pods)

    broken = {"spec": {"source": {"uri": packages.onnx("m/2", seed=2)},
                       "podMetadata": {"labels": {"mlmodel.io/simulate": "crashloop"}}}}
    kubectl.run("patch", "mlmodel", "m", "-n", served, "--type=merge", "-p", json.dumps(broken))
    rolled = wait_condition(kubectl, served, "m", "RolledBack", timeout=120)
    assert rolled["status"]["revision"] == 1
    assert rolled["status"]["desiredRevision"] == 2

    log = operator_as_sa.log_file.read_text(errors="replace")
    assert "Forbidden" not in log, "the operator hit an RBAC refusal:\n" + operator_as_sa.log_tail()
    assert " 403" not in log


def test_token_auth_and_network_policy_with_the_charts_rbac(
    operator_as_sa: OperatorProcess, kubectl: Kubectl, served: str, s3: Any, bucket: str,
    s3_env: dict[str, str], tmp_path: Path,
) -> None:
    """The chart's RBAC lets the operator bind the model's reviewer to system:auth-delegator (the API server's
    escalation check: `bind` on that role only) and apply its NetworkPolicy; deleting the model through kopf's
    delete handler leaves no ClusterRoleBinding behind."""
    create_store_secret(kubectl, served, s3_env)
    packages = Packages(s3, bucket, tmp_path / "packages")
    packages.folder.mkdir()
    spec: dict[str, Any] = {"nodePool": "gpu", "resources": {"gpu": 1}, "auth": {"mode": "KubernetesTokens"},
                            "networkPolicy": {}}
    kubectl.apply(mlmodel("m", packages.onnx("m/1", seed=1), **spec), served)
    wait_condition(kubectl, served, "m", "Ready", timeout=90)
    binding = kubectl.json("get", "clusterrolebinding", f"mlmodel:{served}:m:token-reviewer")
    assert binding["roleRef"]["name"] == "system:auth-delegator"
    pods = kubectl.json("get", "pods", "-n", served)["items"]
    assert pods
    assert all(p["spec"]["serviceAccountName"] == "m-token-reviewer" for p in pods)
    assert kubectl.run("get", "networkpolicy", "m", "-n", served, check=False).returncode == 0

    kubectl.run("delete", "mlmodel", "m", "-n", served, "--timeout=60s")  # waits for kopf's finalizer
    selector = f"app.kubernetes.io/component=token-reviewer,serving.mlmodel.io/namespace={served}"
    assert kubectl.json("get", "clusterrolebindings", "-l", selector)["items"] == []
    log = operator_as_sa.log_file.read_text(errors="replace")
    assert "Forbidden" not in log, "the operator hit an RBAC refusal:\n" + operator_as_sa.log_tail()
    assert " 403" not in log
