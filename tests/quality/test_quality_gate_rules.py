"""The quality gate's decision (mlmodel_operator.gates, pure), as a table: no gate; every bound met (equal to
a bound passes); below a minimum; above a maximum; a missing metric; a metric that is not a finite number
(text, a boolean, NaN); several failures reported together, minimums first; metrics read from metadata.json's
training section whatever else it holds; the CRD refuses a bound that is not a number."""

from __future__ import annotations

import math
from typing import Any

import pytest
from mlmodel_operator.gates import evaluate, message, training_metrics
from mlmodel_operator.spec import QualityGate
from pydantic import ValidationError

GATE = QualityGate(minimums={"accuracy": 0.9, "recall": 0.8}, maximums={"loss": 0.3})
GOOD: dict[str, Any] = {"accuracy": 0.93, "recall": 0.8, "loss": 0.3, "precision": 0.1}


@pytest.mark.parametrize(
    ("gate", "metrics", "expected"),
    [
        (None, {}, ""),
        (QualityGate(), {}, ""),
        (GATE, GOOD, ""),
        (GATE, {**GOOD, "accuracy": 0.89}, "accuracy 0.89 is below the minimum 0.9"),
        (GATE, {**GOOD, "loss": 0.31}, "loss 0.31 is above the maximum 0.3"),
        (GATE, {k: v for k, v in GOOD.items() if k != "recall"},
         "recall: missing from metadata.json training.metrics (the gate's minimum is 0.8)"),
        (GATE, {**GOOD, "accuracy": "high"},
         "accuracy: 'high' in metadata.json training.metrics is not a finite number (the gate's minimum is 0.9)"),
        (GATE, {**GOOD, "accuracy": True}, "accuracy: True in metadata.json training.metrics is not a finite number"),
        (GATE, {**GOOD, "loss": math.nan}, "loss: nan in metadata.json training.metrics is not a finite number"),
        (GATE, {"accuracy": 1, "recall": 0.5, "loss": 2},
         "recall 0.5 is below the minimum 0.8; loss 2 is above the maximum 0.3"),
    ],
    ids=["no-gate", "empty-gate", "passes", "below-minimum", "above-maximum", "missing", "text", "boolean", "nan",
         "several"],
)
def test_gate(gate: QualityGate | None, metrics: dict[str, Any], expected: str) -> None:
    failures = evaluate(gate, metrics)
    if not expected:
        assert failures == ()
        return
    assert failures
    assert message(failures).startswith("quality gate failed: ")
    assert expected in message(failures)


def test_metrics_come_from_the_training_section() -> None:
    assert training_metrics({"framework": "pytorch", "metrics": {"f1": 0.9}}) == {"f1": 0.9}
    assert training_metrics({"framework": "pytorch"}) == {}
    assert training_metrics({"metrics": [0.9]}) == {}
    assert training_metrics(None) == {}


def test_bounds_must_be_numbers() -> None:
    with pytest.raises(ValidationError):
        QualityGate.model_validate({"minimums": {"accuracy": "high"}})
