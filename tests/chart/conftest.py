"""Fixtures for the chart tests: helm, rendering, and the monitoring CRDs for server-side dry runs."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from hack.chart import CHART
from hack.localcluster import Layout
from hack.localcluster.tools import _extract_helm, control_plane_binaries
from tests.support.kube import Kubectl

Helm = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    path = Layout.default().bin / "helm"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _extract_helm(path)
    return path


@pytest.fixture(scope="session")
def helm(helm_binary: Path, kubeconfig: Path) -> Helm:
    def run(*args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([str(helm_binary), "--kubeconfig", str(kubeconfig), *args],
                             capture_output=True, text=True, timeout=180, input=stdin)
        if check and res.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({res.returncode}):\n{res.stderr}")
        return res

    return run


@pytest.fixture(scope="session")
def render(helm_binary: Path) -> Callable[..., list[dict[str, object]]]:
    """`helm template` with --set values; returns the rendered objects (no cluster needed)."""

    def run(*sets: str, namespace: str = "mlmodel-system") -> list[dict[str, object]]:
        args = [str(helm_binary), "template", "mlmodel", str(CHART), "-n", namespace]
        for s in sets:
            args += ["--set", s]
        res = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
        return [d for d in yaml.safe_load_all(res.stdout) if d]

    return run


@pytest.fixture(scope="session")
def monitoring_crds(kubectl: Kubectl) -> None:
    """prometheus-operator's CRDs (fetched through the Go module proxy by the build recipe)."""
    folder = control_plane_binaries() / "crds" / "monitoring"
    for crd in sorted(folder.glob("*.yaml")):
        kubectl.run("apply", "--server-side", "-f", str(crd))
    kubectl.run("wait", "--for=condition=Established", "--timeout=60s",
                "crd/servicemonitors.monitoring.coreos.com", "crd/podmonitors.monitoring.coreos.com",
                "crd/prometheusrules.monitoring.coreos.com")


@pytest.fixture
def release(helm: Helm, namespace: str) -> Iterator[str]:
    """A unique release name (its ClusterRole is cluster-wide), uninstalled after the test."""
    name = f"mlm-{secrets.token_hex(3)}"
    yield name
    helm("uninstall", name, "-n", namespace, "--wait=false", check=False)
