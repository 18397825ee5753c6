"""Reads of real pods and Services for the end-to-end tests."""

from __future__ import annotations

from typing import Any

import httpx
from mlmodel_operator import names

from hack.localcluster.node import NAME as REAL_NODE
from tests.e2e.models import INFER_BODY
from tests.operator.cluster import mlmodel
from tests.support.kube import Kubectl
from tests.support.waiting import wait_for

__all__ = ["REAL_NODE", "model_manifest", "pods", "restarts", "service_url"]


def model_manifest(name: str, uri: str, **spec: Any) -> str:
    """An MLModel on the real node's pool with small requests (this machine has two cores for everything)."""
    from tests.e2e.conftest import SMALL

    return mlmodel(name, uri, **{"nodePool": "real", "resources": SMALL, **spec})


def service_url(kubectl: Kubectl, namespace: str, name: str) -> str:
    """The model's inference URL through its Service's ClusterIP (kube-proxy's rules, from the host)."""
    svc = kubectl.json("get", "service", name, "-n", namespace)
    port = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "http")
    url = f"http://{svc['spec']['clusterIP']}:{port}/v2/models/{name}/infer"
    # A new Service answers once kube-proxy has written its rules, a moment after the model is Ready.
    wait_for(lambda: httpx.post(url, json=INFER_BODY, timeout=5).status_code == 200, 30, f"{url} to answer")
    return url


def pods(kubectl: Kubectl, namespace: str, revision: int | None = None) -> list[dict[str, Any]]:
    selector = ["-l", f"{names.REVISION_LABEL}={revision}"] if revision is not None else []
    items: list[dict[str, Any]] = kubectl.json("get", "pods", "-n", namespace, *selector)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def restarts(pod: dict[str, Any]) -> int:
    return sum(int(c.get("restartCount", 0)) for c in pod.get("status", {}).get("containerStatuses", []))


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def rollout_done(kubectl: Kubectl, namespace: str, name: str, revision: int, replicas: int) -> bool:
    """Only `revision`'s pods remain, `replicas` of them, all Ready (the old ones are gone, not terminating)."""
    selector = ",".join(f"{k}={v}" for k, v in names.selector_labels(name).items())
    mine: list[dict[str, Any]] = kubectl.json("get", "pods", "-n", namespace, "-l", selector)["items"]
    return (len(mine) == replicas
            and all(p["metadata"]["labels"].get(names.REVISION_LABEL) == str(revision) and ready(p) for p in mine))
