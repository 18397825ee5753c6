"""Pod Security `restricted` is enforced in the operator's namespace and in every model namespace of these
tests: the operator's pods (the chart's) and the runtime's pods (the operator's) run there, and the namespace
really refuses what `restricted` forbids."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import RESTRICTED, InClusterOperator
from tests.e2e.models import E2EPackages
from tests.e2e.realpods import model_manifest, pods, ready
from tests.operator.cluster import wait_condition
from tests.support.kube import Kubectl

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore, pytest.mark.slow]

ROOT_POD = """
apiVersion: v1
kind: Pod
metadata: {name: runs-as-root}
spec:
  containers: [{name: c, image: %s, securityContext: {runAsUser: 0}}]
"""


def _labels(kubectl: Kubectl, namespace: str) -> dict[str, str]:
    return dict(kubectl.json("get", "namespace", namespace)["metadata"]["labels"])


def test_operator_and_runtime_pods_run_under_restricted(
    operator: InClusterOperator, model_ns: str, packages: E2EPackages, kubectl: Kubectl, images: dict[str, str],
) -> None:
    for namespace in (operator.namespace, model_ns):
        assert RESTRICTED.items() <= _labels(kubectl, namespace).items()
    assert all(ready(p) for p in operator.pods())

    kubectl.apply(model_manifest("m", packages.good("m/1", seed=1), replicas=1), model_ns)
    wait_condition(kubectl, model_ns, "m", "Ready", timeout=240)
    pod = pods(kubectl, model_ns)[0]
    assert ready(pod)
    container = pod["spec"]["containers"][0]["securityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["runAsNonRoot"] is True
    assert container["seccompProfile"]["type"] == "RuntimeDefault"

    refused = kubectl.run("apply", "-n", model_ns, "-f", "-", stdin=ROOT_POD % images["runtime"], check=False)
    assert refused.returncode != 0
    assert "violates PodSecurity" in refused.stderr
