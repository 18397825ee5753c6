"""The operator's per-model metrics on a fresh registry: one condition series per (model, condition) holding
its current status, moved when the status flips; one serving-revision series per model, replaced when the
revision changes; both gone when the model is forgotten (deleted); other models untouched. (The counters a pass
moves are read in test_passes_against_a_fake_api.py::test_a_rollback_is_counted; the leader gauge in the
leader-election tests.)"""

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

