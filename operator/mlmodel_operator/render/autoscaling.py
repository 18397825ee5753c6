"""The autoscaler of spec.autoscaling, as pure functions of (MLModel, operator config).

Either engine targets the MLModel's scale subresource (never the Deployment), so the HPA owns spec.replicas
and the operator renders the Deployment from it: the two never write the same field. The HPA is named after
the model in both cases (KEDA's `horizontalPodAutoscalerConfig.name`), so its status is read the same way.

- `keda`: a KEDA ScaledObject whose Prometheus trigger queries the runtime's own series summed over the
  model's pods (a gauge averaged over a short window per pod first); metricType AverageValue, so the HPA
  wants ceil(sum / averageValue) replicas. A query with no series is an error (`ignoreNullValues: false`),
  not zero: a missing metric leaves the replicas as they are.
- `hpa`: an autoscaling/v2 HorizontalPodAutoscaler on a Pods metric of the custom metrics API, for clusters
  whose adapter (e.g. prometheus-adapter) serves the runtime's series under the configured names.
"""

from __future__ import annotations

from typing import Any

from mlmodel_operator import names
from mlmodel_operator.config import AutoscalingEngine, OperatorConfig
from mlmodel_operator.render.hashing import stable_hash
from mlmodel_operator.spec import API_VERSION, KIND, Autoscaling, AutoscalingBehavior, MLModel, ScalingRules

KEDA_API_VERSION = "keda.sh/v1alpha1"
HPA_API_VERSION = "autoscaling/v2"

# Model servers: scale up at once (a queue grows fast and a new replica takes a while to load its model), down
# slowly (five minutes of lower load before a replica goes, then one a minute).
DEFAULT_SCALE_UP: dict[str, Any] = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15},
                 {"type": "Pods", "value": 4, "periodSeconds": 15}],
}
DEFAULT_SCALE_DOWN: dict[str, Any] = {
    "stabilizationWindowSeconds": 300,
    "selectPolicy": "Max",
    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
}

# The runtime's series per target metric (runtime/mlmodel_runtime/metrics.py).
SERIES = {
    "InFlightRequests": "mlmodel_runtime_inflight_requests",
    "QueueDepth": "mlmodel_runtime_queue_depth",
    "RequestsPerSecond": "mlmodel_runtime_requests_total",
}


def query(model: MLModel, metric: str, rate_window: str = "1m", average_window: str = "30s") -> str:
    """PromQL for the model's total of `metric` over its pods (all revisions: the load the model carries); a
    gauge is averaged over `average_window` per pod of those running now (each pod is scraped at another
    moment: an instant sum of a request moving between pods counts it twice or not at all)."""
    selector = f'{{namespace="{model.metadata.namespace}",model="{model.metadata.name}"}}'
    series = SERIES[metric]
    if metric == "RequestsPerSecond":
        return f"sum(rate({series}{selector}[{rate_window}]))"
    if int(average_window[:-1]) == 0:  # "0s" (config: digits and a unit)
        return f"sum({series}{selector})"
    # `and` the instant vector: only the pods there now (a pod that went keeps its last value in its average for
    # the whole window, and the requests it held are counted again on the pods that took them over).
    return f"sum(avg_over_time({series}{selector}[{average_window}]) and {series}{selector})"


def quantity(value: float) -> str:
    """A resource.Quantity for a target value: whole numbers as they are, else in thousandths (2.5 -> 2500m)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{round(value * 1000)}m"


def behavior(given: AutoscalingBehavior | None) -> dict[str, Any]:
    """The HPA's behavior: the model-server defaults, each field replaced by what the spec gives."""
    return {
        "scaleUp": _rules(DEFAULT_SCALE_UP, given.scale_up if given else None),
        "scaleDown": _rules(DEFAULT_SCALE_DOWN, given.scale_down if given else None),
    }


def _rules(default: dict[str, Any], given: ScalingRules | None) -> dict[str, Any]:
    if given is None:
        return dict(default)
    return {**default, **given.model_dump(by_alias=True, exclude_none=True)}


def _metadata(model: MLModel) -> dict[str, Any]:
    return {
        "name": model.metadata.name,
        "namespace": model.metadata.namespace,
        "labels": names.object_labels(model.metadata.name),
        "annotations": {},
        "ownerReferences": [{
            "apiVersion": model.api_version, "kind": model.kind, "name": model.metadata.name,
            "uid": model.metadata.uid, "controller": True, "blockOwnerDeletion": True,
        }],
    }


def _target(model: MLModel) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "name": model.metadata.name}


def _hashed(obj: dict[str, Any]) -> dict[str, Any]:
    obj["metadata"]["annotations"][names.APPLIED_HASH_ANNOTATION] = stable_hash(obj)
    return obj


def render_scaled_object(model: MLModel, spec: Autoscaling, engine: AutoscalingEngine) -> dict[str, Any]:
    """KEDA's ScaledObject: a Prometheus trigger on the runtime's series, the HPA named after the model."""
    target = spec.target
    return _hashed({
        "apiVersion": KEDA_API_VERSION,
        "kind": "ScaledObject",
        "metadata": _metadata(model),
        "spec": {
            "scaleTargetRef": _target(model),
            "minReplicaCount": spec.min_replicas,
            "maxReplicaCount": spec.max_replicas,
            "pollingInterval": engine.polling_interval_seconds,
            "advanced": {"horizontalPodAutoscalerConfig": {"name": model.metadata.name,
                                                           "behavior": behavior(spec.behavior)}},
            "triggers": [{
                "type": "prometheus",
                "name": target.metric[0].lower() + target.metric[1:],
                "metricType": "AverageValue",
                "metadata": {
                    "serverAddress": engine.prometheus_address,
                    "query": query(model, target.metric, engine.rate_window, engine.average_window),
                    "threshold": repr(float(target.average_value)).removesuffix(".0"),
                    "ignoreNullValues": "false",
                },
            }],
        },
    })


def render_hpa(model: MLModel, spec: Autoscaling, engine: AutoscalingEngine) -> dict[str, Any]:
    """An autoscaling/v2 HPA on the Pods metric the cluster's custom-metrics adapter serves for the target."""
    names_ = engine.custom_metrics
    metric_name = {
        "InFlightRequests": names_.in_flight_requests,
        "QueueDepth": names_.queue_depth,
        "RequestsPerSecond": names_.requests_per_second,
    }[spec.target.metric]
    return _hashed({
        "apiVersion": HPA_API_VERSION,
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(model),
        "spec": {
            "scaleTargetRef": _target(model),
            "minReplicas": spec.min_replicas,
            "maxReplicas": spec.max_replicas,
            "metrics": [{"type": "Pods", "pods": {
                "metric": {"name": metric_name},
                "target": {"type": "AverageValue", "averageValue": quantity(spec.target.average_value)},
            }}],
            "behavior": behavior(spec.behavior),
        },
    })


def render_autoscaler(model: MLModel, config: OperatorConfig) -> dict[str, Any] | None:
    """The object the configured engine needs for spec.autoscaling; None when the model has no autoscaling."""
    spec = model.spec.autoscaling
    if spec is None:
        return None
    engine = config.autoscaling
    if engine.engine == "keda":
        return render_scaled_object(model, spec, engine)
    return render_hpa(model, spec, engine)


def autoscaler_kind(config: OperatorConfig) -> tuple[str, str]:
    """(apiVersion, kind) of the object render_autoscaler makes under this configuration."""
    if config.autoscaling.engine == "keda":
        return KEDA_API_VERSION, "ScaledObject"
    return HPA_API_VERSION, "HorizontalPodAutoscaler"
