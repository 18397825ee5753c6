"""The runtime's /metrics, scraped from the pod's IP on its metrics port as Prometheus does (the pod
template's prometheus.io annotations), carries the model's own series after a request through the Service."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import InClusterOperator
from tests.e2e.models import INFER_BODY, E2EPackages
from tests.e2e.realpods import model_manifest, pods, service_url
from tests.operator.cluster import wait_condition
from tests.support.kube import Kubectl

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore, pytest.mark.slow]


def test_per_model_series_from_the_pod_ip(
    operator: InClusterOperator, model_ns: str, packages: E2EPackages, kubectl: Kubectl,
) -> None:
    kubectl.apply(model_manifest("m", packages.good("m/1", seed=1), replicas=1), model_ns)
    wait_condition(kubectl, model_ns, "m", "Ready", timeout=240)
    answer = httpx.post(service_url(kubectl, model_ns, "m"), json=INFER_BODY, timeout=10)
    assert answer.status_code == 200, answer.text

    pod = pods(kubectl, model_ns)[0]
    notes = pod["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    url = f"http://{pod['status']['podIP']}:{notes['prometheus.io/port']}{notes['prometheus.io/path']}"
    page = httpx.get(url, timeout=10)
    assert page.status_code == 200
    samples = [s for f in text_string_to_metric_families(page.text) for s in f.samples]
    mine = [s for s in samples if s.labels.get("model") == "m"]
    assert mine, f"no series labelled model=m at {url}"
    requests = [s for s in mine if s.name.startswith("mlmodel_runtime_requests") and s.name.endswith("_total")]
    assert requests, [s.name for s in mine]
    assert sum(s.value for s in requests) >= 1
    assert {s.labels.get("revision") for s in mine} == {"1"}
