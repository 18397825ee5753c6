"""The chart against the real API server: every rendered object passes a server-side dry run (real schemas,
the monitoring CRDs included); the chart installs; and its RBAC is least privilege: `kubectl auth can-i` as
the operator's ServiceAccount allows what the operator does and refuses what it does not need, cluster-wide
and, with a list of namespaces, only in those namespaces."""

from __future__ import annotations

import pytest
import yaml

from tests.chart.conftest import Helm
from tests.support.kube import Kubectl

pytestmark = pytest.mark.cluster

CHART = "charts/mlmodel-operator"


def test_every_rendered_object_passes_server_side_dry_run(
    kubectl: Kubectl, helm: Helm, namespace: str, monitoring_crds: None
) -> None:
    for scope in ([], [f"config.watch.namespaces={{{namespace}}}"]):
        sets = ["prometheusRule.enabled=true", "serviceMonitor.enabled=true", "podMonitor.enabled=true", *scope]
        args = ["template", "dry", CHART, "-n", namespace]
        for s in sets:
            args += ["--set", s]
        manifest = helm(*args).stdout
        kinds = {d["kind"] for d in yaml.safe_load_all(manifest) if d}
        assert {"Deployment", "ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap"} <= kinds
        res = kubectl.run("apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=manifest, check=False)
        assert res.returncode == 0, res.stderr


def _can(kubectl: Kubectl, sa: str, verb: str, resource: str, namespace: str | None) -> bool:
    ns = ["-n", namespace] if namespace else []
    res = kubectl.run("auth", "can-i", verb, resource, f"--as={sa}", *ns, check=False)
    return res.stdout.strip() == "yes"


ALLOWED = [
    ("watch", "mlmodels.serving.mlmodel.io"),
    ("patch", "mlmodels.serving.mlmodel.io/status"),
    ("create", "deployments.apps"),
    ("patch", "deployments.apps"),
    ("delete", "deployments.apps"),  # a canary's candidate Deployment, when the canary ends
    ("create", "services"),
    ("patch", "configmaps"),  # a canary's shadow settings
    ("list", "pods"),
    ("get", "secrets"),
    ("create", "events"),
    ("get", "serviceaccounts"),  # spec.auth KubernetesTokens: the model's token reviewer
    ("create", "serviceaccounts"),
    ("delete", "serviceaccounts"),
    ("get", "networkpolicies.networking.k8s.io"),  # spec.networkPolicy
    ("patch", "networkpolicies.networking.k8s.io"),
    ("delete", "networkpolicies.networking.k8s.io"),
]
DENIED = [
    ("list", "secrets"),  # Secrets are read by name only
    ("watch", "secrets"),
    ("update", "mlmodels.serving.mlmodel.io"),  # the operator never writes spec
    ("delete", "mlmodels.serving.mlmodel.io"),
    ("create", "pods"),
    ("list", "replicasets.apps"),  # the rollout is read from the Deployment and its pods
    ("list", "configmaps"),  # the shadow ConfigMap is read by name only
]
DENIED_CLUSTER = [
    ("delete", "nodes"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("patch", "customresourcedefinitions.apiextensions.k8s.io"),
    ("patch", "prometheusrules.monitoring.coreos.com"),  # another operator's CRD
    ("bind", "clusterroles.rbac.authorization.k8s.io/cluster-admin"),  # bind: system:auth-delegator only
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
]
# Cluster-wide whatever namespaces are served: the reviewer bindings of spec.auth KubernetesTokens (docs/access.md).
TOKEN_REVIEW = [
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("list", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("delete", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("bind", "clusterroles.rbac.authorization.k8s.io/system:auth-delegator"),
]


def test_installed_rbac_is_least_privilege_cluster_wide(
    kubectl: Kubectl, helm: Helm, namespace: str, release: str
) -> None:
    helm("install", release, CHART, "-n", namespace, "--set", "image.tag=test")
    sa = f"system:serviceaccount:{namespace}:{release}-mlmodel-operator"
    other = "default"  # cluster-wide: any namespace
    for verb, resource in ALLOWED:
        assert _can(kubectl, sa, verb, resource, other), f"the operator needs to {verb} {resource}"
    for verb, resource in DENIED + DENIED_CLUSTER:
        assert not _can(kubectl, sa, verb, resource, other), f"the operator must not {verb} {resource}"
    for verb, resource in TOKEN_REVIEW:
        assert _can(kubectl, sa, verb, resource, None), f"the operator needs to {verb} {resource}"
    # Its own Lease, in its own namespace, and no other.
    assert _can(kubectl, sa, "update", f"leases.coordination.k8s.io/{release}-mlmodel-operator", namespace)
    assert not _can(kubectl, sa, "update", "leases.coordination.k8s.io/kube-scheduler", namespace)
    assert not _can(kubectl, sa, "update", f"leases.coordination.k8s.io/{release}-mlmodel-operator", other)


def test_installed_rbac_is_namespaced_when_watching_a_list(
    kubectl: Kubectl, helm: Helm, namespace: str, release: str
) -> None:
    served = f"{namespace}-models"
    kubectl.run("create", "namespace", served)
    try:
        helm("install", release, CHART, "-n", namespace, "--set", f"config.watch.namespaces={{{served}}}")
        sa = f"system:serviceaccount:{namespace}:{release}-mlmodel-operator"
        assert kubectl.run("get", "clusterrole", f"{release}-mlmodel-operator", check=False).returncode != 0
        for verb, resource in ALLOWED:
            assert _can(kubectl, sa, verb, resource, served), f"{verb} {resource} in {served}"
            assert not _can(kubectl, sa, verb, resource, "default"), f"{verb} {resource} outside {served}"
        for verb, resource in TOKEN_REVIEW:  # cluster-scoped objects: cluster-wide even then
            assert _can(kubectl, sa, verb, resource, None), f"the operator needs to {verb} {resource}"
        for verb, resource in DENIED_CLUSTER:
            assert not _can(kubectl, sa, verb, resource, None), f"the operator must not {verb} {resource}"
    finally:
        kubectl.run("delete", "namespace", served, "--wait=false", check=False)
