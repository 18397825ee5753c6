"""What spec.autoscaling renders (pure): KEDA's ScaledObject or an autoscaling/v2 HPA, by configuration; both
target the MLModel's scale subresource, carry the model-server behavior defaults (each field overridable) and
are owned by the MLModel. Nothing is rendered without spec.autoscaling."""

from __future__ import annotations

from typing import Any

import pytest
from mlmodel_operator import names
from mlmodel_operator.render.autoscaling import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    behavior,
    quantity,
    query,
    render_autoscaler,
)
from mlmodel_operator.spec import AutoscalingBehavior

from tests.operator.factories import config, model

AUTO: dict[str, Any] = {"minReplicas": 2, "maxReplicas": 8, "target": {"metric": "InFlightRequests", "averageValue": 4}}
INFLIGHT = 'mlmodel_runtime_inflight_requests{namespace="risk",model="fraud-detector"}'
QUEUE = 'mlmodel_runtime_queue_depth{namespace="risk",model="fraud-detector"}'
TARGET = {"apiVersion": "serving.mlmodel.io/v1alpha1", "kind": "MLModel", "name": "fraud-detector"}


@pytest.mark.parametrize(("metric", "promql"), [
    ("InFlightRequests", f"sum(avg_over_time({INFLIGHT}[30s]) and {INFLIGHT})"),
    ("QueueDepth", f"sum(avg_over_time({QUEUE}[30s]) and {QUEUE})"),
    ("RequestsPerSecond", 'sum(rate(mlmodel_runtime_requests_total{namespace="risk",model="fraud-detector"}[1m]))'),
])
def test_query_sums_the_runtime_series_over_the_models_pods(metric: str, promql: str) -> None:
    assert query(model(), metric) == promql


@pytest.mark.parametrize(("value", "text"), [(4, "4"), (4.0, "4"), (2.5, "2500m"), (0.001, "1m"), (1000000, "1000000")])
def test_target_values_as_quantities(value: float, text: str) -> None:
    assert quantity(value) == text


def test_scaled_object_for_keda() -> None:
    obj = render_autoscaler(model(autoscaling=AUTO), config())
    assert obj is not None
    assert (obj["apiVersion"], obj["kind"]) == ("keda.sh/v1alpha1", "ScaledObject")
    assert obj["metadata"]["name"] == "fraud-detector"
    assert obj["metadata"]["namespace"] == "risk"
    assert obj["metadata"]["ownerReferences"][0]["uid"] == "0a1b2c3d-uid"
    assert names.APPLIED_HASH_ANNOTATION in obj["metadata"]["annotations"]
    spec = obj["spec"]
    assert spec["scaleTargetRef"] == TARGET
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["pollingInterval"]) == (2, 8, 15)
    hpa = spec["advanced"]["horizontalPodAutoscalerConfig"]
    assert hpa == {"name": "fraud-detector", "behavior": {"scaleUp": DEFAULT_SCALE_UP, "scaleDown": DEFAULT_SCALE_DOWN}}
    assert spec["triggers"] == [{
        "type": "prometheus", "name": "inFlightRequests", "metricType": "AverageValue",
        "metadata": {
            "serverAddress": "http://prometheus-operated.monitoring.svc:9090",
            "query": f"sum(avg_over_time({INFLIGHT}[30s]) and {INFLIGHT})",
            "threshold": "4",
            "ignoreNullValues": "false",
        },
    }]


def test_scaled_object_takes_the_configured_prometheus_and_rate_window() -> None:
    auto = {**AUTO, "target": {"metric": "RequestsPerSecond", "averageValue": 2.5}}
    cfg = config(autoscaling={"prometheusAddress": "http://prom:9090", "rateWindow": "30s",
                              "pollingIntervalSeconds": 5})
    obj = render_autoscaler(model(autoscaling=auto), cfg)
    assert obj is not None
    trigger = obj["spec"]["triggers"][0]
    assert trigger["metadata"]["serverAddress"] == "http://prom:9090"
    assert trigger["metadata"]["query"].endswith("[30s]))")
    assert trigger["metadata"]["threshold"] == "2.5"
    assert obj["spec"]["pollingInterval"] == 5


@pytest.mark.parametrize(("window", "promql"), [
    ("1m", f"sum(avg_over_time({QUEUE}[1m]) and {QUEUE})"),
    ("0s", f"sum({QUEUE})"),
])
def test_gauges_are_averaged_over_the_configured_window(window: str, promql: str) -> None:
    auto = {**AUTO, "target": {"metric": "QueueDepth", "averageValue": 2}}
    obj = render_autoscaler(model(autoscaling=auto), config(autoscaling={"averageWindow": window}))
    assert obj is not None
    assert obj["spec"]["triggers"][0]["metadata"]["query"] == promql


@pytest.mark.parametrize(("metric", "name"), [
    ("InFlightRequests", "mlmodel_runtime_inflight_requests"),
    ("QueueDepth", "mlmodel_runtime_queue_depth"),
    ("RequestsPerSecond", "mlmodel_runtime_requests_per_second"),
])
def test_hpa_on_the_custom_metrics_api(metric: str, name: str) -> None:
    auto = {**AUTO, "target": {"metric": metric, "averageValue": 1.5}}
    obj = render_autoscaler(model(autoscaling=auto), config(autoscaling={"engine": "hpa"}))
    assert obj is not None
    assert (obj["apiVersion"], obj["kind"]) == ("autoscaling/v2", "HorizontalPodAutoscaler")
    spec = obj["spec"]
    assert spec["scaleTargetRef"] == TARGET
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 8)
    assert spec["metrics"] == [{"type": "Pods", "pods": {
        "metric": {"name": name}, "target": {"type": "AverageValue", "averageValue": "1500m"}}}]
    assert spec["behavior"] == {"scaleUp": DEFAULT_SCALE_UP, "scaleDown": DEFAULT_SCALE_DOWN}


def test_hpa_metric_names_come_from_the_config() -> None:
    cfg = config(autoscaling={"engine": "hpa", "customMetrics": {"inFlightRequests": "inflight"}})
    obj = render_autoscaler(model(autoscaling=AUTO), cfg)
    assert obj is not None
    assert obj["spec"]["metrics"][0]["pods"]["metric"] == {"name": "inflight"}


def test_behavior_fields_given_replace_the_defaults_one_by_one() -> None:
    given = AutoscalingBehavior.model_validate({
        "scaleDown": {"stabilizationWindowSeconds": 60},
        "scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 30}]},
    })
    out = behavior(given)
    assert out["scaleDown"] == {**DEFAULT_SCALE_DOWN, "stabilizationWindowSeconds": 60}
    assert out["scaleUp"] == {**DEFAULT_SCALE_UP, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 30}]}


def test_defaults_scale_up_fast_and_down_slowly() -> None:
    out = behavior(None)
    assert out["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert out["scaleDown"]["stabilizationWindowSeconds"] >= 300
    assert out["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 60}]


def test_nothing_without_autoscaling() -> None:
    assert render_autoscaler(model(replicas=3), config()) is None
    assert render_autoscaler(model(replicas=3), config(autoscaling={"engine": "hpa"})) is None


def test_hash_follows_the_spec() -> None:
    one = render_autoscaler(model(autoscaling=AUTO), config())
    two = render_autoscaler(model(autoscaling={**AUTO, "maxReplicas": 9}), config())
    assert one is not None
    assert two is not None
    key = names.APPLIED_HASH_ANNOTATION
    assert one["metadata"]["annotations"][key] != two["metadata"]["annotations"][key]
    assert render_autoscaler(model(autoscaling=AUTO), config()) == one
