"""Plain Kubernetes workloads for the harness tests."""

from __future__ import annotations

from typing import Any

import yaml

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def deployment(
    name: str,
    *,
    replicas: int = 1,
    gpus: int = 0,
    tolerate_gpu: bool = False,
    labels: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    progress_deadline: int | None = None,
) -> str:
    container: dict[str, Any] = {
        "name": "main",
        "image": "registry.invalid/pause:1",
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
    }
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    pod_spec: dict[str, Any] = {"containers": [container]}
    if tolerate_gpu:
        pod_spec["tolerations"] = [GPU_TOLERATION]
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name, **(labels or {})}}, "spec": pod_spec},
    }
    if progress_deadline is not None:
        spec["progressDeadlineSeconds"] = progress_deadline
    return yaml.safe_dump(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}
    )
