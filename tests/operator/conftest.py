"""Fixtures for the operator's integration tests: the CRD installed, one real operator process per test
module (`python -m mlmodel_operator --config ...` against the local cluster and the test object store,
short resync), a namespace per test that only this session's operators serve, a credentials Secret in it
and packages uploaded to a fresh bucket.

The operators serve only namespaces named `<SESSION_PREFIX>-*`: MLModels that other tests (or other
people) keep in the same cluster are never touched, and nothing of theirs is counted as ours."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.operator.cluster import OperatorProcess, Packages, create_store_secret
from tests.operator.factories import LOCAL_CONFIG
from tests.support.kube import Kubectl
from tests.support.ports import free_port
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "serving.mlmodel.io_mlmodels.yaml"
RESYNC_SECONDS = 2.0
SESSION_PREFIX = f"mlop-{secrets.token_hex(3)}"


@pytest.fixture(scope="session")
def crd(kubectl: Kubectl) -> None:
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    kubectl.run("wait", "--for=condition=Established", "crd/mlmodels.serving.mlmodel.io", "--timeout=60s")


# Failure detection within seconds (the defaults are minutes): crash loops after 2 restarts (kwok's crashloop
# stage restarts every 3-7 s), never-ready and unschedulable revisions after 5 s.
FAILURE_DETECTION = {"crashLoopRestarts": 2, "neverReadySeconds": 5, "unschedulableSeconds": 5,
                     "stuckSeconds": 10, "checkIntervalSeconds": 1}


def start_operator(
    folder: Path, kubeconfig: Path, s3_env: dict[str, str], namespaces: list[str], env: dict[str, str] | None = None,
    config_overrides: dict[str, Any] | None = None,
) -> OperatorProcess:
    """Start `python -m mlmodel_operator` for `namespaces` (globs allowed) and wait for its liveness probe;
    `config_overrides` replace top-level keys of its configuration file."""
    folder.mkdir(parents=True, exist_ok=True)
    metrics_port, health_port = free_port(), free_port()
    config: dict[str, Any] = {
        **LOCAL_CONFIG,
        "objectStore": {"endpoint": s3_env["AWS_ENDPOINT_URL"], "region": s3_env["AWS_REGION"]},
        "resync": {"intervalSeconds": RESYNC_SECONDS, "retryDelaySeconds": 1.0},
        "failureDetection": FAILURE_DETECTION,
        "metricsPort": metrics_port,
        "healthPort": health_port,
        **(config_overrides or {}),
    }
    config_file = folder / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    log_file = folder / "operator.log"
    # The operator reads models' credentials from their Secrets only: no store credentials in its env.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment["KUBECONFIG"] = str(kubeconfig)
    environment.update(env or {})
    args = [arg for ns in namespaces for arg in ("--namespace", ns)]
    with open(log_file, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mlmodel_operator", "--config", str(config_file), *args],
                                cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT)
    running = OperatorProcess(proc, log_file, metrics_port, health_port)
    try:
        wait_for(running.healthy, 60, f"the operator to answer its liveness probe (log: {log_file})")
    except BaseException:
        running.stop()
        raise
    return running


@pytest.fixture(scope="module")
def operator(
    crd: None, kubeconfig: Path, kubectl: Kubectl, s3_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """A real operator process for the test module; stopped by pid afterwards."""
    running = start_operator(tmp_path_factory.mktemp("operator"), kubeconfig, s3_env, [f"{SESSION_PREFIX}-*"])
    try:
        yield running
    finally:
        # Namespaces deleted by the tests hold MLModels with kopf's finalizer: let the operator
        # release them before it stops, so nothing stays Terminating.
        wait_for(lambda: not _terminating_models(kubectl), 60, "MLModels being deleted to go")
        running.stop()


def _terminating_models(kubectl: Kubectl) -> list[str]:
    items = kubectl.json("get", "mlmodels", "--all-namespaces")["items"]
    return [f"{m['metadata']['namespace']}/{m['metadata']['name']}" for m in items
            if m["metadata"].get("deletionTimestamp") and m["metadata"]["namespace"].startswith(SESSION_PREFIX)]


@pytest.fixture
def model_namespace(
    request: pytest.FixtureRequest, kubectl: Kubectl, operator: OperatorProcess, bucket: str
) -> Iterator[str]:
    """A fresh namespace served by the module's operator. Its MLModels are deleted (and released by the
    operator) before the namespace goes, and before the test's bucket goes (set up after it)."""
    stem = "".join(ch if ch.isalnum() else "-" for ch in request.node.name.lower())[:40].strip("-")
    name = f"{SESSION_PREFIX}-{stem}-{secrets.token_hex(2)}"
    kubectl.run("create", "namespace", name)
    wait_for(lambda: kubectl.run("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
             30, f"the default ServiceAccount of {name}")
    yield name
    kubectl.run("delete", "mlmodels", "--all", "-n", name, "--timeout=60s", check=False)
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def credentials(kubectl: Kubectl, model_namespace: str, s3_env: dict[str, str]) -> str:
    """A Secret named models-s3 with the object store's access key pair, in the test's namespace."""
    return create_store_secret(kubectl, model_namespace, s3_env)


@pytest.fixture
def packages(s3: Any, bucket: str, tmp_path: Path) -> Packages:
    return Packages(s3, bucket, tmp_path)
