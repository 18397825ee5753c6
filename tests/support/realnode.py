"""One decision for tests that need what only some machines have (root, buildah, the real node's containerd):
skip them with the reason, or fail them where `MLMODEL_REQUIRE_REAL_NODE=1` says they must run."""

from __future__ import annotations

import os
from typing import Any, NoReturn

import pytest

REQUIRE_ENV = "MLMODEL_REQUIRE_REAL_NODE"


def real_node_required() -> bool:
    return os.environ.get(REQUIRE_ENV) == "1"


def require_real_node_or_skip(reason: str) -> NoReturn:
    """Skip the calling test because of `reason`; fail it instead under MLMODEL_REQUIRE_REAL_NODE=1."""
    if real_node_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: this test must run here)", pytrace=False)
    pytest.skip(reason)


def real_node_pod(name: str, image: str, *, command: list[str] | None = None,
                  annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A Pod for the real node (its pool and taint), under Pod Security `restricted`, from a local image."""
    container: dict[str, Any] = {
        "name": "c", "image": image, "imagePullPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
    }
    if command:
        container["command"] = command
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"nodeSelector": {"pool": "real"},
                 "tolerations": [{"key": "mlmodel.io/real-node", "operator": "Exists", "effect": "NoSchedule"}],
                 "terminationGracePeriodSeconds": 1, "containers": [container]},
    }
