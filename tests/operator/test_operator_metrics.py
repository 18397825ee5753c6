"""The operator's per-model metrics on a fresh registry: one condition series per (model, condition) holding
its current status, moved when the status flips; one serving-revision series per model, replaced when the
revision changes; both gone when the model is forgotten (deleted); other models untouched; the leader gauge."""

from __future__ import annotations

from mlmodel_operator.metrics import OperatorMetrics
from prometheus_client import CollectorRegistry


def _series(metrics: OperatorMetrics, name: str) -> set[tuple[tuple[str, str], ...]]:
    return {
        tuple(sorted(sample.labels.items()))
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == name and sample.value == 1
    }


def test_condition_and_serving_revision_series_follow_the_status() -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    metrics.model_state("ns", "a", [("Ready", "False"), ("Stalled", "False")], None)
    metrics.model_state("ns", "b", [("Ready", "True")], (4, "sha256:bb"))
    metrics.model_state("ns", "a", [("Ready", "True"), ("Stalled", "False")], (1, "sha256:aa"))
    conditions = _series(metrics, "mlmodel_operator_model_condition")
    assert conditions == {
        (("condition", "Ready"), ("name", "a"), ("namespace", "ns"), ("status", "True")),
        (("condition", "Stalled"), ("name", "a"), ("namespace", "ns"), ("status", "False")),
        (("condition", "Ready"), ("name", "b"), ("namespace", "ns"), ("status", "True")),
    }
    metrics.model_state("ns", "a", [("Ready", "True"), ("Stalled", "False")], (2, "sha256:a2"))
    serving = _series(metrics, "mlmodel_operator_model_serving_revision_info")
    assert serving == {
        (("digest", "sha256:a2"), ("name", "a"), ("namespace", "ns"), ("revision", "2")),
        (("digest", "sha256:bb"), ("name", "b"), ("namespace", "ns"), ("revision", "4")),
    }

    metrics.forget("ns", "a")
    assert {dict(s)["name"] for s in _series(metrics, "mlmodel_operator_model_condition")} == {"b"}
    assert {dict(s)["name"] for s in _series(metrics, "mlmodel_operator_model_serving_revision_info")} == {"b"}
    metrics.forget("ns", "gone")  # never seen: nothing to do


def test_counters_and_leader() -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    metrics.rollbacks.labels("ns", "a", "CrashLoop").inc()
    metrics.rollouts.labels(result="rolled_back").inc()
    metrics.leader.set(1)
    registry = metrics.registry
    assert registry.get_sample_value(
        "mlmodel_operator_rollbacks_total", {"namespace": "ns", "name": "a", "reason": "CrashLoop"}) == 1
    assert registry.get_sample_value("mlmodel_operator_rollouts_total", {"result": "rolled_back"}) == 1
    assert registry.get_sample_value("mlmodel_operator_leader") == 1
