"""The metrics path of the local cluster for autoscaling tests: its Prometheus and KEDA, started for the test
session when they do not run (and stopped after it), and Prometheus queries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hack.localcluster import Layout, down, status, up
from hack.localcluster import prometheus as prom


def _running(component: str) -> Iterator[None]:
    layout = Layout.default()
    started = not getattr(status(layout), component)
    if started:
        up((component,), layout)
    yield
    if started:
        down((component,), layout)


@pytest.fixture(scope="session")
def prometheus(real_node: None) -> Iterator[str]:
    """The local cluster's Prometheus: its HTTP API's URL."""
    for _ in _running("prometheus"):
        url = prom.url(Layout.default())
        assert url
        yield url


@pytest.fixture(scope="session")
def keda(prometheus: str) -> Iterator[None]:
    """KEDA's operator and metrics API server on the local cluster (its CRDs installed, the APIService Available)."""
    yield from _running("keda")


def query(url: str, promql: str) -> list[dict[str, Any]]:
    """An instant query's result vector."""
    answer = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5)
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result
