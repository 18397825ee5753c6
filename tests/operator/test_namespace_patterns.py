"""An operator serving a namespace pattern (`--namespace 'prefix-*'`) serves every matching namespace, including
those created while it starts (kopf's own pattern resolution missed a namespace created between its first
listing and its watch: its models were never served), and touches nothing outside the pattern: no finalizer,
no status, no Deployment."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.operator.cluster import (
    OperatorProcess,
    Packages,
    create_store_secret,
    drop_own_namespaces,
    mlmodel,
    wait_condition,
)
from tests.operator.conftest import SESSION_PREFIX, start_operator
from tests.support.audit import AuditLog
from tests.support.kube import Kubectl
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore, pytest.mark.slow]

NAMESPACES = 6


def test_pattern_serves_namespaces_created_at_start_up_and_nothing_else(
    crd: None, kubectl: Kubectl, kubeconfig: Path, s3_env: dict[str, str], packages: Packages, tmp_path: Path,
    audit_log: AuditLog | None,
) -> None:
    stem = f"{SESSION_PREFIX}p{secrets.token_hex(2)}"
    served = [f"{stem}-{i}" for i in range(NAMESPACES)]
    outside = f"{stem}x-0"  # the pattern is `<stem>-*`
    uri = packages.onnx("pattern/1")
    running: list[OperatorProcess] = []
    try:
        kubectl.run("create", "namespace", outside)
        kubectl.apply(mlmodel("m", uri, secret=None, nodePool="cpu"), outside)
        mark = audit_log.mark() if audit_log else 0
        running.append(start_operator(tmp_path / "operator", kubeconfig, s3_env, [f"{stem}-*"]))
        # Right after start-up, while the operator sets up its watches: one namespace after another.
        for namespace in served:
            kubectl.run("create", "namespace", namespace)
        for namespace in served:
            create_store_secret(kubectl, namespace, s3_env)
            kubectl.apply(mlmodel("m", uri, nodePool="cpu"), namespace)
        for namespace in served:
            wait_condition(kubectl, namespace, "m", "Ready", reason="Serving")

        operator = running[0]
        passes = operator.metric("mlmodel_operator_reconcile_total")
        wait_for(lambda: operator.metric("mlmodel_operator_reconcile_total") >= passes + NAMESPACES, 30,
                 "a resync of every served model")
        untouched = kubectl.json("get", "mlmodel", "m", "-n", outside)
        assert untouched.get("status") in (None, {}), untouched.get("status")
        assert not untouched["metadata"].get("finalizers")
        assert not any(key.startswith("serving.mlmodel.io/") for key in untouched["metadata"].get("annotations", {}))
        if audit_log:
            writes = audit_log.writes(since=mark, namespace=outside)
            assert not writes, "writes outside the pattern:\n" + "\n".join(map(str, writes))
        assert kubectl.run("get", "deployments", "-n", outside, "-o", "name").stdout.strip() == ""
    finally:
        drop_own_namespaces(kubectl, [*served, outside], running)
