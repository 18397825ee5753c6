"""Quality gates: does a package's training metrics (metadata.json `training.metrics`) meet spec.qualityGate?

Pure: a function of the gate and the metrics, table-tested. Checked while the package is validated, before any
rollout; a failure stalls the model with reason QualityGateFailed and the serving revision stays as it is. A
metric the gate names that the package does not report, or reports as something other than a finite number,
fails the gate: nothing passes by omission.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mlmodel_operator.spec import HistoryEntry, PackageStatus, QualityGate, QualityStatus

REASON = "QualityGateFailed"
EXAMPLES_REASON = "ExamplesMismatch"  # the runtime's exit code 17 (names.RUNTIME_EXIT_REASONS)
METRICS_AT = "metadata.json training.metrics"


@dataclass(frozen=True)
class GateFailure:
    """One bound a package does not meet."""

    metric: str
    bound: Literal["minimum", "maximum"]
    limit: float
    value: object  # the package's value; None when the package does not report the metric

    def describe(self) -> str:
        number = as_number(self.value)
        if self.value is None:
            return f"{self.metric}: missing from {METRICS_AT} (the gate's {self.bound} is {self.limit:g})"
        if number is None:
            return (f"{self.metric}: {self.value!r} in {METRICS_AT} is not a finite number "
                    f"(the gate's {self.bound} is {self.limit:g})")
        side = "below the minimum" if self.bound == "minimum" else "above the maximum"
        return f"{self.metric} {number:g} is {side} {self.limit:g}"


def as_number(value: object) -> float | None:
    """`value` as a finite float; None for anything else (booleans, text, NaN, infinities, nothing)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def training_metrics(training: Mapping[str, Any] | None) -> dict[str, object]:
    """The metrics of metadata.json's `training` section ({} when there are none or they are not an object)."""
    metrics = (training or {}).get("metrics")
    return dict(metrics) if isinstance(metrics, Mapping) else {}


def evaluate(gate: QualityGate | None, metrics: Mapping[str, object]) -> tuple[GateFailure, ...]:
    """Every bound of `gate` that `metrics` does not meet, minimums first, each in name order (empty: passed)."""
    if gate is None:
        return ()
    bounds: tuple[tuple[Literal["minimum", "maximum"], Mapping[str, float] | None], ...] = (
        ("minimum", gate.minimums), ("maximum", gate.maximums))
    failures: list[GateFailure] = []
    for bound, limits in bounds:
        for metric, limit in sorted((limits or {}).items()):
            value = metrics.get(metric)
            number = as_number(value)
            if number is None or (number < limit if bound == "minimum" else number > limit):
                failures.append(GateFailure(metric, bound, limit, value))
    return tuple(failures)


def message(failures: tuple[GateFailure, ...]) -> str:
    """One line for the Stalled condition and the event: every failed bound."""
    return "quality gate failed: " + "; ".join(f.describe() for f in failures)


def quality_view(
    gate_checked: bool,
    failure_reason: str | None,
    package: PackageStatus | None,
    desired: int | None,
    history: Iterable[HistoryEntry],
    previous: QualityStatus | None,
) -> QualityStatus | None:
    """status.quality: how the desired revision fared with its examples and the gate (pure; equal inputs give an
    equal value, so a steady model writes nothing). `previous` stays when this pass validated nothing."""
    if failure_reason == REASON:
        return QualityStatus(revision=None, examples="NotRun", gate="Failed")
    if package is None or desired is None:
        return previous
    gate: Literal["Passed", "NotSet"] = "Passed" if gate_checked else "NotSet"
    if not package.examples:
        return QualityStatus(revision=desired, examples="NoExamples", gate=gate)
    entry = next((e for e in history if e.revision == desired), None)
    examples: Literal["Passed", "Failed", "Pending", "NotRun"]
    if entry is None:
        examples = "Pending"  # rolling out (or about to)
    elif entry.outcome == "Failed":
        examples = "Failed" if entry.reason == EXAMPLES_REASON else "NotRun"
    else:
        examples = "Passed"  # it served: the runtime ran its examples before reporting ready
    return QualityStatus(revision=desired, examples=examples, gate=gate)
