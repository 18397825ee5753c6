"""End-to-end tests on real pods: the local cluster's real node runs the runtime image built from
Dockerfile.runtime, and the operator runs as users run it: `helm install` of the chart with its own RBAC,
two replicas with leader election, its image built from Dockerfile.operator.

One operator release serves the whole session, in a namespace that enforces Pod Security `restricted`; it
serves only this session's model namespaces (each also `restricted`), handed out one per test. Where this
machine cannot run the real node the tests are skipped with the reason, except under
MLMODEL_REQUIRE_REAL_NODE=1 (CI), where that is a failure.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hack import deploy
from hack.localcluster import Layout, status
from hack.localcluster.layout import REPO
from tests.e2e.models import E2EPackages
from tests.operator.cluster import create_store_secret
from tests.operator.conftest import crd
from tests.support.kube import Kubectl
from tests.support.realnode import require_real_node_or_skip
from tests.support.waiting import wait_for

__all__ = ["crd"]
MODEL_NAMESPACES = 8  # one per test that deploys models; reused after the test deletes its models
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest"}
# Fast enough for tests, slow enough for this machine's two cores (a real runtime takes seconds to start).
OPERATOR_CONFIG: dict[str, Any] = {
    "resync": {"intervalSeconds": 3.0, "retryDelaySeconds": 2.0},
    "failureDetection": {"crashLoopRestarts": 2, "neverReadySeconds": 30, "unschedulableSeconds": 30,
                         "startupGraceSeconds": 10, "stuckSeconds": 60, "checkIntervalSeconds": 2},
    # The budget grows with the package: 20 s, plus 1 s per 10 MiB.
    "startup": {"baseSeconds": 20, "bytesPerSecond": 10 * 1024 * 1024, "periodSeconds": 2},
    "runtime": {"terminationGracePeriodSeconds": 30},
}
# What a model on the real node asks for: this machine has two cores for everything.
SMALL = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}}


@dataclass
class InClusterOperator:
    namespace: str
    release: str
    kubectl: Kubectl

    def pods(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.kubectl.json(
            "get", "pods", "-n", self.namespace, "-l", "app.kubernetes.io/name=mlmodel-operator")["items"]
        return items

    def leader(self) -> str:
        # The chart names the Lease after the release's full name.
        lease = self.kubectl.json("get", "lease", f"{self.release}-mlmodel-operator", "-n", self.namespace)
        return str(lease["spec"]["holderIdentity"])

    def logs(self) -> str:
        out = []
        for pod in self.pods():
            name = pod["metadata"]["name"]
            res = self.kubectl.run("logs", name, "-n", self.namespace, "--tail=60", check=False)
            out.append(f"--- {name}:\n{res.stdout}{res.stderr}")
        return "\n".join(out)


@pytest.fixture(scope="session")
def real_node(kubeconfig: Path) -> None:
    """The local cluster's real node runs (the `kubeconfig` fixture started the cluster)."""
    if kubeconfig.resolve() != Layout.default().kubeconfig.resolve():
        pytest.skip("the end-to-end tests on real pods need the local cluster's real node")
    now = status()
    if not now.node:
        require_real_node_or_skip(now.node_unavailable or "the local cluster's real node is not running")


@pytest.fixture(scope="session")
def images(real_node: None) -> dict[str, str]:
    """`make images`: both images built from our Dockerfiles (cached by content) and loaded into the node."""
    res = subprocess.run([sys.executable, "-m", "hack.images", "build", "--load"], cwd=REPO,
                         capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, f"make images failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return deploy.image_refs(Layout.default())


# Package scope: the in-cluster operator and its namespaces go when the last e2e test is done, so that the
# rest of the suite does not share this machine's two cores with them.
@pytest.fixture(scope="package")
def e2e_namespaces(real_node: None, kubectl: Kubectl, s3_env: dict[str, str]) -> Iterator[list[str]]:
    token = secrets.token_hex(3)
    names = [f"e2e-{token}-{i}" for i in range(MODEL_NAMESPACES)]
    for name in names:
        kubectl.run("create", "namespace", name)
        kubectl.run("label", "namespace", name, *(f"{k}={v}" for k, v in RESTRICTED.items()))
        wait_for(lambda n=name: kubectl.run("get", "sa", "default", "-n", n, check=False).returncode == 0,  # type: ignore[misc]
                 30, f"the default ServiceAccount of {name}")
        create_store_secret(kubectl, name, s3_env)
    yield names
    for name in names:
        kubectl.run("delete", "mlmodels", "--all", "-n", name, "--timeout=60s", check=False)
        kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="package")
def operator(images: dict[str, str], e2e_namespaces: list[str], kubectl: Kubectl, crd: None
             ) -> Iterator[InClusterOperator]:
    """The operator installed by the chart (2 replicas, leader election) in a `restricted` namespace."""
    layout = Layout.default()
    namespace = e2e_namespaces[0].rsplit("-", 1)[0] + "-system"
    release = namespace.removesuffix("-system")
    kubectl.run("create", "namespace", namespace)
    kubectl.run("label", "namespace", namespace, *(f"{k}={v}" for k, v in RESTRICTED.items()))
    values = deploy.values(layout, namespaces=e2e_namespaces, config=OPERATOR_CONFIG)
    running = InClusterOperator(namespace, release, kubectl)
    try:
        deploy.install(layout, values, release=release, namespace=namespace, timeout="240s")
        wait_for(lambda: running.leader(), 60, "a replica to take the Lease")
        yield running
    finally:
        for name in e2e_namespaces:  # while the operator runs, so that its finalizers are released
            kubectl.run("delete", "mlmodels", "--all", "-n", name, "--timeout=60s", check=False)
        deploy.uninstall(layout, release=release, namespace=namespace)
        kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)


_free: list[str] = []


@pytest.fixture
def model_ns(operator: InClusterOperator, e2e_namespaces: list[str], kubectl: Kubectl) -> Iterator[str]:
    """A namespace the in-cluster operator serves, empty of models; its models are deleted after the test."""
    if not _free:
        _free.extend(e2e_namespaces)
    name = _free.pop(0)
    yield name
    kubectl.run("delete", "mlmodels", "--all", "-n", name, "--timeout=90s", check=False)
    wait_for(lambda: not kubectl.json("get", "pods", "-n", name)["items"], 90, f"the pods of {name} to go")
    _free.append(name)


@pytest.fixture
def packages(s3: Any, bucket: str, tmp_path: Path) -> E2EPackages:
    return E2EPackages(s3, bucket, tmp_path)
