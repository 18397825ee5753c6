"""The local cluster's Prometheus (Debian's package, targets from podtargets.py's watch of the real node's pods)
scrapes a pod on the real node that asks for it, labelled with its namespace and pod, and drops it when the
pod goes: the metrics path an autoscaler reads."""

from __future__ import annotations

import json

import pytest

from hack.localcluster import prometheus as prom
from tests.e2e.metricspath import prometheus, query
from tests.support.kube import Kubectl
from tests.support.realnode import real_node_pod
from tests.support.waiting import wait_for

__all__ = ["prometheus"]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

EXPORTER = ("import time, prometheus_client as p; p.Gauge('probe_value', 'x').set(42); "
            "p.start_http_server(9100); time.sleep(3600)")
SCRAPE = {"prometheus.io/scrape": "true", "prometheus.io/port": "9100", "prometheus.io/path": "/metrics"}


def test_a_real_pod_is_scraped_with_its_labels(
    prometheus: str, images: dict[str, str], kubectl: Kubectl, namespace: str
) -> None:
    pod = real_node_pod("exporter", images["runtime"], command=["python", "-c", EXPORTER], annotations=SCRAPE)
    kubectl.apply(json.dumps(pod), namespace)
    promql = f'probe_value{{namespace="{namespace}",pod="exporter"}}'
    series = wait_for(lambda: query(prometheus, promql), 120, "the exporter pod's series in Prometheus")
    assert float(series[0]["value"][1]) == 42
    assert series[0]["metric"]["job"] == prom.JOB

    kubectl.run("delete", "pod", "exporter", "-n", namespace, "--wait=true")
    wait_for(lambda: not query(prometheus, f'up{{namespace="{namespace}",pod="exporter"}} == 1'), 60,
             "the deleted pod to leave the targets")
