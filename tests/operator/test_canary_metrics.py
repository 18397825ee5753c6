"""The operator's canary metrics, read back from a fresh registry after reconcile passes against the fake API (the
scenarios of test_canary_passes.py, through its helpers):
- while a canary runs: its step, steps, configured and achieved weight, phase (one series, with the candidate
  revision) and when its step started;
- each analysis window counted once by verdict, by the pass that wrote it (passes between windows, and an
  operator started again on the same status, count nothing more);
- a canary that ends counted once by outcome: promoted, aborted (its revision Failed), or superseded (the spec
  changed before it was promoted: a new revision's canary, or a revert to the serving revision); the phase
  series moves, the old one goes;
- every verdict and outcome series exists at 0 from the canary's first pass (so increase() sees the first one);
- forget (the model deleted) drops every canary series, and a model without a canary has none."""

from __future__ import annotations

from typing import Any

from mlmodel_operator.metrics import OperatorMetrics
from mlmodel_operator.reconcile import Reconciler
from mlmodel_operator.spec import CanaryAnalysisStatus, CanaryStatus
from prometheus_client import CollectorRegistry

from tests.operator.fakeapi import NS, Cluster
from tests.operator.test_canary_passes import V1, V3, _canary, _serving, _start_canary, _window


def _value(metrics: OperatorMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"namespace": NS, "name": "m", **labels})


def _windows(metrics: OperatorMetrics) -> dict[str, float | None]:
    return {v: _value(metrics, "mlmodel_operator_canary_analysis_windows_total", verdict=v)
            for v in ("Pass", "Fail", "Inconclusive")}


def _outcomes(metrics: OperatorMetrics) -> dict[str, float | None]:
    return {o: _value(metrics, "mlmodel_operator_canary_outcomes_total", outcome=o)
            for o in ("promoted", "aborted", "superseded")}


def _phases(metrics: OperatorMetrics) -> set[tuple[str, str]]:
    return {(s.labels["revision"], s.labels["phase"]) for family in metrics.registry.collect()
            for s in family.samples if s.name == "mlmodel_operator_canary_phase" and s.value == 1}


def _canary_series(metrics: OperatorMetrics) -> list[str]:
    return sorted({s.name for family in metrics.registry.collect() for s in family.samples
                   if s.name.startswith("mlmodel_operator_canary")})


def _watched(replicas: int = 4, **rollout: Any) -> tuple[Cluster, OperatorMetrics, Reconciler]:
    """A model serving revision 1 with the canary strategy, and an operator whose metrics the test reads."""
    world, _ = _serving(replicas=replicas, **rollout)
    metrics = OperatorMetrics(CollectorRegistry())
    return world, metrics, world.reconciler(metrics=metrics)


def test_a_promoted_canary_step_by_step() -> None:
    world, metrics, op = _watched(replicas=4)
    assert _canary_series(metrics) == []  # no canary yet: no series

    traffic = _start_canary(world, op)
    assert _phases(metrics) == {("2", "Progressing")}
    assert _value(metrics, "mlmodel_operator_canary_step") == 1
    assert _value(metrics, "mlmodel_operator_canary_steps") == 2
    assert _value(metrics, "mlmodel_operator_canary_weight_percent", kind="configured") == 25
    assert _value(metrics, "mlmodel_operator_canary_step_started_timestamp_seconds") == world.clock.now.timestamp()
    assert _windows(metrics) == {"Pass": 0, "Fail": 0, "Inconclusive": 0}
    assert _outcomes(metrics) == {"promoted": 0, "aborted": 0, "superseded": 0}

    started = world.clock.now.timestamp()
    _window(world, op, traffic)
    assert _windows(metrics) == {"Pass": 1, "Fail": 0, "Inconclusive": 0}
    assert _value(metrics, "mlmodel_operator_canary_step") == 2
    assert _value(metrics, "mlmodel_operator_canary_weight_percent", kind="configured") == 50
    assert _value(metrics, "mlmodel_operator_canary_step_started_timestamp_seconds") == started + 30
    op.reconcile(NS, "m")  # a pass between windows counts nothing
    assert _windows(metrics)["Pass"] == 1

    world.roll_out("m-canary")
    world.roll_out("m")
    op.reconcile(NS, "m")
    assert _value(metrics, "mlmodel_operator_canary_weight_percent", kind="achieved") == world.status("m")[
        "canary"]["achievedWeight"]
    _window(world, op, traffic)
    assert _windows(metrics)["Pass"] == 2
    assert _phases(metrics) == {("2", "Promoting")}
    world.roll_out("m")
    op.reconcile(NS, "m")
    op.reconcile(NS, "m")
    assert _phases(metrics) == {("2", "Promoted")}
    assert _outcomes(metrics) == {"promoted": 1, "aborted": 0, "superseded": 0}
    assert _windows(metrics) == {"Pass": 2, "Fail": 0, "Inconclusive": 0}

    # An operator started again reads the same status: the window and the outcome were already counted.
    again = OperatorMetrics(CollectorRegistry())
    world.reconciler(metrics=again).reconcile(NS, "m")
    assert _windows(again) == {"Pass": 0, "Fail": 0, "Inconclusive": 0}
    assert _outcomes(again) == {"promoted": 0, "aborted": 0, "superseded": 0}
    assert _phases(again) == {("2", "Promoted")}


def test_an_aborted_canary_counts_the_failed_window_and_the_abort() -> None:
    world, metrics, op = _watched(replicas=4)
    traffic = _start_canary(world, op)
    _window(world, op, traffic, candidate_ok=3)  # too few requests
    assert _windows(metrics) == {"Pass": 0, "Fail": 0, "Inconclusive": 1}
    _window(world, op, traffic, candidate_ok=18, candidate_failed=2)
    assert world.status("m")["canary"]["phase"] == "Aborted"
    assert _windows(metrics) == {"Pass": 0, "Fail": 1, "Inconclusive": 1}
    assert _outcomes(metrics) == {"promoted": 0, "aborted": 1, "superseded": 0}
    assert _phases(metrics) == {("2", "Aborted")}
    op.reconcile(NS, "m")
    assert _outcomes(metrics)["aborted"] == 1


def test_the_abort_annotation_counts_an_abort_without_a_window() -> None:
    world, metrics, op = _watched(replicas=4, **_canary({"weight": 25, "untilPromoted": True}, {"weight": 50}))
    _start_canary(world, op)
    world.edit("m", annotations={"serving.mlmodel.io/abort": "2026-11-22T10:06:00Z"})
    op.reconcile(NS, "m")
    assert _outcomes(metrics) == {"promoted": 0, "aborted": 1, "superseded": 0}
    assert _windows(metrics) == {"Pass": 0, "Fail": 0, "Inconclusive": 0}


def test_a_spec_change_mid_canary_supersedes_it() -> None:
    world, metrics, op = _watched(replicas=4)
    traffic = _start_canary(world, op)
    _window(world, op, traffic)
    world.edit("m", {"source": {"uri": V3}})  # a new revision: a new canary from step 1
    op.reconcile(NS, "m")
    assert _phases(metrics) == {("3", "Progressing")}
    assert _outcomes(metrics) == {"promoted": 0, "aborted": 0, "superseded": 1}
    world.edit("m", {"source": {"uri": V1}})  # a revert to the serving revision (git revert): the canary ends
    op.reconcile(NS, "m")
    assert world.status("m")["canary"]["phase"] == "Aborted"
    assert _phases(metrics) == {("3", "Aborted")}
    assert _outcomes(metrics) == {"promoted": 0, "aborted": 0, "superseded": 2}, "nothing failed: not an abort"


def _status(revision: int, phase: str, step: int = 1, achieved: int | None = 20,
            analysis_at: str | None = None) -> CanaryStatus:
    analysis = CanaryAnalysisStatus(verdict="Pass", message="ok", time=analysis_at) if analysis_at else None
    return CanaryStatus(revision=revision, stable_revision=1, phase=phase, step=step, steps=2, weight=25,
                        achieved_weight=achieved, stable_replicas=4, candidate_replicas=1,
                        step_started_at="2026-11-22T10:00:00Z", analysis=analysis)


def test_series_move_with_the_status_and_go_with_the_model() -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    metrics.canary_state(NS, "other", _status(7, "Progressing"), None)
    first = _status(2, "Progressing", analysis_at="2026-11-22T10:01:00Z")
    metrics.canary_state(NS, "m", first, None)
    assert _windows(metrics)["Pass"] == 1
    metrics.canary_state(NS, "m", first, first)  # written before: not counted again
    assert _windows(metrics)["Pass"] == 1
    # A spec change mid-canary: a new candidate revision, whose window has the same time as the old one's last.
    metrics.canary_state(NS, "m", _status(3, "Progressing", achieved=None, analysis_at="2026-11-22T10:01:00Z"), first)
    assert _windows(metrics)["Pass"] == 2
    assert _phases(metrics) == {("3", "Progressing"), ("7", "Progressing")}
    assert _value(metrics, "mlmodel_operator_canary_weight_percent", kind="achieved") is None
    assert metrics.registry.get_sample_value("mlmodel_operator_canary_step_started_timestamp_seconds",
                                             {"namespace": NS, "name": "m"}) is not None

    metrics.canary_state(NS, "m", None, None)  # no canary in the status any more
    metrics.forget(NS, "other")
    assert _canary_series(metrics) == []
    metrics.forget(NS, "never-seen")
