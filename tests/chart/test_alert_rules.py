"""The chart's PrometheusRule passes `promtool check rules`, and `promtool test rules` shows each alert firing
when it should and not before: a model not Ready for 10 minutes, a stalled model, a rollback, a 5xx rate
over the threshold, a p99 latency over the threshold; feature and prediction drift (PSI over the threshold for
its duration) on the drifted series only; a canary stuck at one step, an aborted canary (and not its rollback
again)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is missing: `make tools` installs it (Debian package prometheus)"
)

TESTS = """
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'mlmodel_operator_model_condition{namespace="risk",name="fraud",condition="Ready",status="False"}'
        values: '1x20'
      - series: 'mlmodel_operator_model_condition{namespace="risk",name="ok",condition="Ready",status="False"}'
        values: '1x5 0x15'
      - series: 'mlmodel_operator_model_condition{namespace="risk",name="fraud",condition="Stalled",status="True"}'
        values: '1x20'
      - series: 'mlmodel_operator_rollbacks_total{namespace="risk",name="fraud",reason="CrashLoop"}'
        values: '0x5 1x15'
    alert_rule_test:
      - {eval_time: 9m, alertname: MLModelNotReady, exp_alerts: []}
      - eval_time: 11m
        alertname: MLModelNotReady
        exp_alerts:
          - exp_labels: {severity: warning, namespace: risk, name: fraud}
            exp_annotations:
              summary: MLModel risk/fraud has not been Ready for 10m
              description: kubectl describe mlmodel -n risk fraud shows the condition's reason.
      - {eval_time: 4m, alertname: MLModelStalled, exp_alerts: []}
      - eval_time: 6m
        alertname: MLModelStalled
        exp_alerts:
          - exp_labels: {severity: warning, namespace: risk, name: fraud}
            exp_annotations:
              summary: "MLModel risk/fraud is stalled: it cannot progress until its spec changes"
              description: The Stalled condition says what is wrong (package, node pool, failed revision).
      - {eval_time: 4m, alertname: MLModelRolledBack, exp_alerts: []}
      - eval_time: 7m
        alertname: MLModelRolledBack
        exp_alerts:
          - exp_labels: {severity: warning, namespace: risk, name: fraud, reason: CrashLoop}
            exp_annotations:
              summary: MLModel risk/fraud was rolled back (CrashLoop)
              description: The last good revision serves again; status.history names the failed one.
  - interval: 1m
    input_series:
      # 100 req/min: 10 of them 5xx (10 %) on "fraud", none on "calm".
      - series: 'mlmodel_runtime_requests_total{namespace="risk",model="fraud",revision="3",code="200"}'
        values: '0+90x30'
      - series: 'mlmodel_runtime_requests_total{namespace="risk",model="fraud",revision="3",code="500"}'
        values: '0+10x30'
      - series: 'mlmodel_runtime_requests_total{namespace="risk",model="calm",revision="1",code="200"}'
        values: '0+100x30'
      # Latency: every request of "fraud" in the 1-2.5 s bucket, "calm" under 0.1 s.
      - series: 'mlmodel_runtime_request_duration_seconds_bucket{namespace="risk",model="fraud",le="0.1"}'
        values: '0x30'
      - series: 'mlmodel_runtime_request_duration_seconds_bucket{namespace="risk",model="fraud",le="2.5"}'
        values: '0+100x30'
      - series: 'mlmodel_runtime_request_duration_seconds_bucket{namespace="risk",model="fraud",le="+Inf"}'
        values: '0+100x30'
      - series: 'mlmodel_runtime_request_duration_seconds_bucket{namespace="risk",model="calm",le="0.1"}'
        values: '0+100x30'
      - series: 'mlmodel_runtime_request_duration_seconds_bucket{namespace="risk",model="calm",le="2.5"}'
        values: '0+100x30'
      - series: 'mlmodel_runtime_request_duration_seconds_bucket{namespace="risk",model="calm",le="+Inf"}'
        values: '0+100x30'
    alert_rule_test:
      # rate() has two samples from minute 1; the alert is pending 5 minutes, then fires.
      - {eval_time: 5m, alertname: MLModelRuntimeErrorRateHigh, exp_alerts: []}
      - eval_time: 7m
        alertname: MLModelRuntimeErrorRateHigh
        exp_alerts:
          - exp_labels: {severity: critical, namespace: risk, model: fraud}
            exp_annotations:
              summary: Model risk/fraud answers 10% of requests with 5xx
              description: Above 0.05 for 5 minutes; check the runtime pods' logs and the model's revision.
      - {eval_time: 10m, alertname: MLModelRuntimeLatencyHigh, exp_alerts: []}
      - eval_time: 12m
        alertname: MLModelRuntimeLatencyHigh
        exp_alerts:
          - exp_labels: {severity: warning, namespace: risk, model: fraud}
            exp_annotations:
              summary: Model risk/fraud p99 latency is 2.476s
              description: "Above 0.5s for 10 minutes: more replicas, dynamic batching, or a bigger GPU pool."
"""


def _rules(render: Callable[..., list[dict[str, Any]]]) -> dict[str, Any]:
    objs = render("prometheusRule.enabled=true")
    rule = next(o for o in objs if o["kind"] == "PrometheusRule")
    return {"groups": rule["spec"]["groups"]}


def test_rules_pass_promtool_check(render: Callable[..., list[dict[str, Any]]], tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(_rules(render)))
    res = subprocess.run([str(PROMTOOL), "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    names = {r["alert"] for g in _rules(render)["groups"] for r in g["rules"]}
    assert {"MLModelNotReady", "MLModelStalled", "MLModelRolledBack", "MLModelRuntimeErrorRateHigh",
            "MLModelRuntimeLatencyHigh", "MLModelCanaryStuck", "MLModelCanaryAborted"} <= names


def test_alerts_fire_when_they_should(render: Callable[..., list[dict[str, Any]]], tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rules(render)))
    (tmp_path / "tests.yaml").write_text(TESTS)
    res = subprocess.run([str(PROMTOOL), "test", "rules", "tests.yaml"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


DRIFT_TESTS = """
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # Series as the runtime exports them: "score" shifted (PSI 0.4), "amount" stable, "age" NaN (window too
      # small), and the prediction's PSI crossing at minute 11 (so firing 30 minutes later).
      - series: 'mlmodel_runtime_feature_drift{namespace="risk",model="fraud",feature="score",score="psi"}'
        values: '0.4x40'
      - series: 'mlmodel_runtime_feature_drift{namespace="risk",model="fraud",feature="score",score="ks"}'
        values: '0.4x40'
      - series: 'mlmodel_runtime_feature_drift{namespace="risk",model="fraud",feature="amount",score="psi"}'
        values: '0.05x40'
      - series: 'mlmodel_runtime_feature_drift{namespace="risk",model="fraud",feature="age",score="psi"}'
        values: 'NANS'
      - series: 'mlmodel_runtime_prediction_drift{namespace="risk",model="fraud",output="output[0]",score="psi"}'
        values: '0.05x10 0.3x35'
    alert_rule_test:
      - {eval_time: 29m, alertname: MLModelFeatureDrift, exp_alerts: []}
      - eval_time: 31m
        alertname: MLModelFeatureDrift
        exp_alerts:
          - exp_labels: {severity: warning, namespace: risk, model: fraud, feature: score}
            exp_annotations:
              summary: "Model risk/fraud: input feature score drifted from its baseline (PSI 0.40)"
              description: "FEATURE_DESCRIPTION"
      - {eval_time: 40m, alertname: MLModelPredictionDrift, exp_alerts: []}
      - eval_time: 42m
        alertname: MLModelPredictionDrift
        exp_alerts:
          - exp_labels: {severity: warning, namespace: risk, model: fraud, output: "output[0]"}
            exp_annotations:
              summary: "Model risk/fraud: output output[0] drifted from its baseline (PSI 0.30)"
              description: "PSI above 0.2 for 30m: the model's predictions are distributed unlike on its training data."
""".replace("NANS", " ".join(["NaN"] * 35)).replace(
    "FEATURE_DESCRIPTION",
    "PSI above 0.2 for 30m: live data differs from the training data; see the dashboard's drift panels and "
    "docs/quality.md.",
)


def test_drift_alerts_fire_on_the_drifted_series_only(
    render: Callable[..., list[dict[str, Any]]], tmp_path: Path
) -> None:
    """Feature drift fires for the shifted feature once its PSI has stayed over driftPsiThreshold for driftFor,
    never for a stable feature or one whose score is NaN (too few rows); prediction drift the same per output."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rules(render)))
    (tmp_path / "tests.yaml").write_text(DRIFT_TESTS)
    res = subprocess.run([str(PROMTOOL), "test", "rules", "tests.yaml"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


SCALING_TESTS = """
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # "busy": at its maxReplicas (4) with a queue growing on both replicas' series; "roomy": the same queue
      # but room left (3 of 6); "drained": at max with a queue that shrinks.
      - series: 'HPA_CURRENT{namespace="risk",horizontalpodautoscaler="busy"}'
        values: '4x30'
      - series: 'HPA_MAX{namespace="risk",horizontalpodautoscaler="busy"}'
        values: '4x30'
      - series: 'mlmodel_runtime_queue_depth{namespace="risk",model="busy",pod="busy-a"}'
        values: '0+2x30'
      - series: 'mlmodel_runtime_queue_depth{namespace="risk",model="busy",pod="busy-b"}'
        values: '0+1x30'
      - series: 'HPA_CURRENT{namespace="risk",horizontalpodautoscaler="roomy"}'
        values: '3x30'
      - series: 'HPA_MAX{namespace="risk",horizontalpodautoscaler="roomy"}'
        values: '6x30'
      - series: 'mlmodel_runtime_queue_depth{namespace="risk",model="roomy",pod="roomy-a"}'
        values: '0+2x30'
      - series: 'HPA_CURRENT{namespace="risk",horizontalpodautoscaler="drained"}'
        values: '4x30'
      - series: 'HPA_MAX{namespace="risk",horizontalpodautoscaler="drained"}'
        values: '4x30'
      - series: 'mlmodel_runtime_queue_depth{namespace="risk",model="drained",pod="drained-a"}'
        values: '60-2x30'
    alert_rule_test:
      - {eval_time: 10m, alertname: MLModelAtMaxReplicasQueueGrowing, exp_alerts: []}
      - eval_time: 12m
        alertname: MLModelAtMaxReplicasQueueGrowing
        exp_alerts:
          - exp_labels: {severity: warning, namespace: risk, model: busy}
            exp_annotations:
              summary: Model risk/busy is at its maxReplicas and its queue keeps growing
              description: "SCALING_DESCRIPTION"
""".replace("HPA_CURRENT", "kube_horizontalpodautoscaler_status_current_replicas").replace(
    "HPA_MAX", "kube_horizontalpodautoscaler_spec_max_replicas").replace(
    "SCALING_DESCRIPTION",
    "The autoscaler cannot add replicas: raise spec.autoscaling.maxReplicas (and the pool's room), or make each "
    "replica faster (batching, a bigger GPU).",
)


def test_at_max_replicas_with_a_growing_queue(render: Callable[..., list[dict[str, Any]]], tmp_path: Path) -> None:
    """Fires for a model whose HPA is at maxReplicas while its queue grows for 10 minutes; not for one with room
    left, nor for one at max whose queue drains."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rules(render)))
    (tmp_path / "tests.yaml").write_text(SCALING_TESTS)
    res = subprocess.run([str(PROMTOOL), "test", "rules", "tests.yaml"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


CANARY_TESTS = """
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # "slow": Progressing; step 1 from 0, step 2 from minute 11 (step_started = 660 s) and never left.
      - series: 'mlmodel_operator_canary_phase{namespace="risk",name="slow",revision="3",phase="Progressing"}'
        values: '1x100'
      - series: 'mlmodel_operator_canary_step_started_timestamp_seconds{namespace="risk",name="slow"}'
        values: '0x10 660x89'
      # "steady": Progressing, a new step every 20 minutes (never an hour at one).
      - series: 'mlmodel_operator_canary_phase{namespace="risk",name="steady",revision="5",phase="Progressing"}'
        values: '1x100'
      - series: 'mlmodel_operator_canary_step_started_timestamp_seconds{namespace="risk",name="steady"}'
        values: '0x19 1200x20 2400x20 3600x20 4800x19'
      # "done": its last step started at 0, but it was promoted: its step no longer moves, rightly.
      - series: 'mlmodel_operator_canary_phase{namespace="risk",name="done",revision="2",phase="Promoted"}'
        values: '1x100'
      - series: 'mlmodel_operator_canary_step_started_timestamp_seconds{namespace="risk",name="done"}'
        values: '0x100'
      # "bad" aborted at minute 6 (also counted as a rollback with reason CanaryAborted); "good" promoted.
      - series: 'mlmodel_operator_canary_outcomes_total{namespace="risk",name="bad",outcome="aborted"}'
        values: '0x5 1x94'
      - series: 'mlmodel_operator_rollbacks_total{namespace="risk",name="bad",reason="CanaryAborted"}'
        values: '0x5 1x94'
      - series: 'mlmodel_operator_canary_outcomes_total{namespace="risk",name="good",outcome="aborted"}'
        values: '0x100'
      - series: 'mlmodel_operator_canary_outcomes_total{namespace="risk",name="good",outcome="promoted"}'
        values: '0x5 1x94'
    alert_rule_test:
      # "slow" has run 61 minutes, but its step changed at minute 11.
      - {eval_time: 61m, alertname: MLModelCanaryStuck, exp_alerts: []}
      - {eval_time: 70m, alertname: MLModelCanaryStuck, exp_alerts: []}
      - eval_time: 72m
        alertname: MLModelCanaryStuck
        exp_alerts:
          - exp_labels: {severity: warning, namespace: risk, name: slow}
            exp_annotations:
              summary: The canary of MLModel risk/slow has stayed at one step for 1h 1m 0s
              description: "STUCK_DESCRIPTION"
      - {eval_time: 4m, alertname: MLModelCanaryAborted, exp_alerts: []}
      - eval_time: 7m
        alertname: MLModelCanaryAborted
        exp_alerts:
          - exp_labels: {severity: warning, namespace: risk, name: bad}
            exp_annotations:
              summary: The canary of MLModel risk/bad was aborted
              description: "ABORTED_DESCRIPTION"
      - {eval_time: 25m, alertname: MLModelCanaryAborted, exp_alerts: []}
      # One alert for an aborted canary: the rollback it causes is not reported again.
      - {eval_time: 7m, alertname: MLModelRolledBack, exp_alerts: []}
""".replace(
    "STUCK_DESCRIPTION",
    "Longer than 1h: a step waiting for mlmodel promote, too few requests for a conclusive analysis window, or "
    "candidate pods not ready; mlmodel history slow -n risk shows the step and the last analysis.",
).replace(
    "ABORTED_DESCRIPTION",
    "The candidate revision is Failed (CanaryAborted) and the stable revision serves again; status.history has "
    "the figures it failed on (mlmodel history bad -n risk).",
)


def test_canary_alerts(render: Callable[..., list[dict[str, Any]]], tmp_path: Path) -> None:
    """MLModelCanaryStuck fires for a canary in phase Progressing whose step started longer than canaryStuckFor
    ago (1h), not for one that moves on each 20 minutes, nor for a promoted one; MLModelCanaryAborted fires for 15
    minutes after an abort, for that model only, and MLModelRolledBack does not report the same abort again."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rules(render)))
    (tmp_path / "tests.yaml").write_text(CANARY_TESTS)
    res = subprocess.run([str(PROMTOOL), "test", "rules", "tests.yaml"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
