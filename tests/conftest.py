"""Fixtures shared by every tier: the cluster, a namespace per test, the object store and a bucket per test.

The cluster is the local one (started here when it is not already running, and stopped again at the end
of the session if this session started it), or an existing one given with `--kubeconfig` / `KUBECONFIG`,
or, where Docker and kind exist, pytest-kind's cluster with `--cluster=kind`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hack.localcluster import Layout, down, status, up
from hack.localcluster.layout import read_env_file
from tests.support.audit import AuditLog
from tests.support.kube import Kubectl
from tests.support.waiting import wait_for


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlmodel")
    group.addoption("--kubeconfig", default=None, help="run against this existing cluster instead of the local one")
    group.addoption("--cluster", choices=["local", "kind"], default="local",
                    help="local: the project's own control plane (default); kind: pytest-kind's kind_cluster")
    group.addoption("--update-golden", action="store_true", help="rewrite golden files instead of comparing")


def _start_once(request: pytest.FixtureRequest, component: str) -> None:
    """Start `component` of the local cluster unless it runs; stop it at session end if we started it."""
    layout = Layout.default()
    if getattr(status(layout), component):
        return
    up((component,), layout)
    request.addfinalizer(lambda: down((component,), layout))


@pytest.fixture(scope="session")
def kubeconfig(request: pytest.FixtureRequest) -> Path:
    given = request.config.getoption("--kubeconfig") or os.environ.get("KUBECONFIG")
    if given:
        return Path(given)
    if request.config.getoption("--cluster") == "kind":
        # Thin adapter: pytest-kind creates the cluster; we only take its kubeconfig (needs Docker and kind).
        return Path(request.getfixturevalue("kind_cluster").kubeconfig_path)
    _start_once(request, "cluster")
    return Layout.default().kubeconfig


@pytest.fixture(scope="session")
def kubectl(kubeconfig: Path) -> Kubectl:
    return Kubectl(kubeconfig)


@pytest.fixture(scope="session")
def audit_log(kubeconfig: Path) -> AuditLog | None:
    """The local cluster's audit log of writes; None on a cluster this project did not start."""
    layout = Layout.default()
    if kubeconfig.resolve() != layout.kubeconfig.resolve() or not layout.audit_log.exists():
        return None
    return AuditLog(layout.audit_log)


@pytest.fixture(scope="session")
def kube_api(kubeconfig: Path) -> Iterator[Any]:
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    yield client
    client.close()


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace, ready for pods (its default ServiceAccount exists), deleted after the test."""
    stem = "".join(ch if ch.isalnum() else "-" for ch in request.node.name.lower())[:40].strip("-")
    name = f"t-{stem}-{secrets.token_hex(3)}"
    kubectl.run("create", "namespace", name)
    wait_for(lambda: kubectl.run("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
             30, f"the default ServiceAccount of {name}")
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def s3_env(request: pytest.FixtureRequest) -> dict[str, str]:
    _start_once(request, "objectstore")
    return read_env_file(Layout.default().objectstore_env)


@pytest.fixture(scope="session")
def s3(s3_env: dict[str, str]) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=s3_env["AWS_ENDPOINT_URL"],
        aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"],
        region_name=s3_env["AWS_REGION"],
    )


@pytest.fixture
def bucket(s3: Any) -> Iterator[str]:
    name = f"t-{secrets.token_hex(6)}"
    s3.create_bucket(Bucket=name)
    yield name
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=name, Delete={"Objects": keys})
    s3.delete_bucket(Bucket=name)


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden") or os.environ.get("UPDATE_GOLDEN"))
