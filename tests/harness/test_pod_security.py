"""Pod Security admission is on: a namespace enforcing `restricted` refuses a privileged pod."""

from __future__ import annotations

import pytest
import yaml

from tests.support.kube import Kubectl

pytestmark = pytest.mark.cluster


def _pod(privileged: bool) -> str:
    security = {"privileged": True} if privileged else {
        "allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 1000,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    }
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "priv" if privileged else "restricted"},
        "spec": {"containers": [{"name": "c", "image": "registry.invalid/pause:1", "securityContext": security}]},
    })


def test_restricted_namespace_refuses_privileged_pod(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")

    refused = kubectl.run("apply", "-n", namespace, "-f", "-", stdin=_pod(privileged=True), check=False)
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr
    assert "privileged" in refused.stderr

    # The same namespace admits a pod that meets the profile: the refusal was about privilege.
    kubectl.apply(_pod(privileged=False), namespace)
