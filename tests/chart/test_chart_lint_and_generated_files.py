"""`helm lint` passes for the default and the namespaced configuration; the chart's CRD is the same file as
crds/ and its values schema is generated from the operator's typed configuration (no drift); the strict
schema refuses unknown and malformed values."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hack.chart import CHART, generated


@pytest.mark.parametrize(
    "sets",
    [[], ["config.watch.namespaces={team-a,team-b}", "prometheusRule.enabled=true", "serviceMonitor.enabled=true",
          "podMonitor.enabled=true"]],
    ids=["defaults", "namespaced-with-monitoring"],
)
def test_helm_lint(helm_binary: Path, sets: list[str]) -> None:
    args = [str(helm_binary), "lint", "--strict", str(CHART)]
    for s in sets:
        args += ["--set", s]
    res = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_generated_files_have_not_drifted() -> None:
    for path, content in generated().items():
        assert path.read_text() == content, f"{path.name} is stale: run `make crds`"


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("config.allowPickel=true", "allowPickel"),  # a typo is refused, not ignored
        ("replicaCount=0", "replicaCount"),
        ("config.nodePools[0].name=GPU_POOL", "name"),
        ("prometheusRule.errorRatio=5", "errorRatio"),
    ],
)
def test_strict_schema_refuses_bad_values(helm_binary: Path, value: str, complaint: str) -> None:
    res = subprocess.run([str(helm_binary), "lint", str(CHART), "--set", value],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert complaint in res.stdout + res.stderr


def test_a_namespace_pattern_is_refused_where_roles_are_made(helm_binary: Path) -> None:
    """The chart makes a Role in each watched namespace: a pattern (which the operator accepts, watching
    cluster-wide) would make a Role in no namespace at all, so rendering fails and says why."""
    res = subprocess.run([str(helm_binary), "template", str(CHART), "--set", "config.watch.namespaces={team-a,team-*}"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert '"team-*" is a pattern' in res.stderr
    exact = subprocess.run([str(helm_binary), "template", str(CHART), "--set", "config.watch.namespaces={team-a}"],
                           capture_output=True, text=True, timeout=60)
    assert exact.returncode == 0, exact.stderr
