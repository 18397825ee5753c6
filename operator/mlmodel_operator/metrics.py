"""The operator's own Prometheus metrics, on an injected registry (tests use a fresh one).

Per-model series (conditions, the serving revision, the canary) follow each model's status and go when it is
deleted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from mlmodel_operator.spec import CanaryStatus, HistoryEntry
from mlmodel_operator.workload import parse_time

VERDICTS = ("Pass", "Fail", "Inconclusive")
OUTCOMES = ("promoted", "aborted", "superseded")


@dataclass(frozen=True)
class _CanarySeries:
    """The label values of a model's canary gauges now set (to remove them when they change)."""

    revision: str
    phase: str
    achieved: bool
    started: bool


class OperatorMetrics:
    """Reconcile passes, API writes, package validations, rollouts and rollbacks, and per-model state."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.reconciles = Counter(
            "mlmodel_operator_reconcile_total",
            "Reconcile passes by outcome (ready, progressing, stalled, retry, error).",
            ["outcome"],
            registry=registry,
        )
        self.reconcile_seconds = Histogram(
            "mlmodel_operator_reconcile_duration_seconds",
            "Wall time of one reconcile pass.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=registry,
        )
        self.writes = Counter(
            "mlmodel_operator_api_writes_total",
            "Writes to the Kubernetes API by resource and verb (a steady model causes none).",
            ["resource", "verb"],
            registry=registry,
        )
        self.validations = Counter(
            "mlmodel_operator_package_validations_total",
            "Package validations by result: valid (hashed what the digest cache lacked), reused (recognized by its "
            "digest from the model's history, nothing hashed) or the failure reason.",
            ["result"],
            registry=registry,
        )

        self.validation_seconds = Histogram(
            "mlmodel_operator_package_validation_duration_seconds",
            "Wall time of one package validation (listing, manifest, metadata and hashing what is not cached).",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
            registry=registry,
        )
        self.rollouts = Counter(
            "mlmodel_operator_rollouts_total",
            "Rollouts of new revisions by result (succeeded, failed, rolled_back).",
            ["result"],
            registry=registry,
        )
        self.rollbacks = Counter(
            "mlmodel_operator_rollbacks_total",
            "Automatic rollbacks to the last serving revision, by the failed revision's reason.",
            ["namespace", "name", "reason"],
            registry=registry,
        )
        self.conditions = Gauge(
            "mlmodel_operator_model_condition",
            "1 for the current status of each condition of each MLModel.",
            ["namespace", "name", "condition", "status"],
            registry=registry,
        )
        self.serving_revision = Gauge(
            "mlmodel_operator_model_serving_revision_info",
            "1 for the revision each MLModel serves, with its package digest.",
            ["namespace", "name", "revision", "digest"],
            registry=registry,
        )
        self.leader = Gauge(
            "mlmodel_operator_leader",
            "1 on the replica that reconciles (it holds the Lease, or runs without election), 0 on a standby.",
            registry=registry,
        )
        self.canary_step = Gauge(
            "mlmodel_operator_canary_step",
            "The step a model's canary is at (1 is the first), from status.canary; kept after it ends.",
            ["namespace", "name"],
            registry=registry,
        )
        self.canary_steps = Gauge(
            "mlmodel_operator_canary_steps",
            "How many steps a model's canary has (spec.rollout.canary.steps).",
            ["namespace", "name"],
            registry=registry,
        )
        self.canary_weight = Gauge(
            "mlmodel_operator_canary_weight_percent",
            "Percent of a model's traffic for its canary's candidate: configured (the step's weight) and achieved "
            "(the candidate's share of the ready replicas behind the model's Service; absent while none is ready).",
            ["namespace", "name", "kind"],
            registry=registry,
        )
        self.canary_phase = Gauge(
            "mlmodel_operator_canary_phase",
            "1 for the phase of each model's canary (Progressing, Promoting, Promoted, Aborted), with the candidate "
            "revision.",
            ["namespace", "name", "revision", "phase"],
            registry=registry,
        )
        self.canary_step_started = Gauge(
            "mlmodel_operator_canary_step_started_timestamp_seconds",
            "When a model's canary entered its current step (Unix time): time() minus this is how long it has stayed.",
            ["namespace", "name"],
            registry=registry,
        )
        self.canary_windows = Counter(
            "mlmodel_operator_canary_analysis_windows_total",
            "Canary analysis windows that ended, by verdict (Pass, Fail, Inconclusive).",
            ["namespace", "name", "verdict"],
            registry=registry,
        )
        self.canary_outcomes = Counter(
            "mlmodel_operator_canary_outcomes_total",
            "Canaries that ended, by outcome: promoted; aborted (a failed analysis window, failed candidate pods, or "
            "mlmodel abort: the revision is Failed); superseded (the spec changed before it was promoted).",
            ["namespace", "name", "outcome"],
            registry=registry,
        )
        self._lock = threading.Lock()
        self._conditions: dict[tuple[str, str], dict[str, str]] = {}
        self._serving: dict[tuple[str, str], tuple[str, str]] = {}
        self._canary: dict[tuple[str, str], _CanarySeries] = {}

    def model_state(
        self, namespace: str, name: str, conditions: Sequence[tuple[str, str]], serving: tuple[int, str] | None
    ) -> None:
        """Set a model's condition series ((type, status) pairs) and its serving revision (number, digest)."""
        key = (namespace, name)
        with self._lock:
            before = self._conditions.get(key, {})
            now = dict(conditions)
            for kind, status in before.items():
                if now.get(kind) != status:
                    self.conditions.remove(namespace, name, kind, status)
            for kind, status in now.items():
                self.conditions.labels(namespace, name, kind, status).set(1)
            self._conditions[key] = now
            old = self._serving.get(key)
            new = (str(serving[0]), serving[1]) if serving is not None else None
            if old is not None and old != new:
                self.serving_revision.remove(namespace, name, *old)
            if new is not None:
                self.serving_revision.labels(namespace, name, *new).set(1)
                self._serving[key] = new
            else:
                self._serving.pop(key, None)

    def canary_state(
        self, namespace: str, name: str, canary: CanaryStatus | None, before: CanaryStatus | None,
        history: Sequence[HistoryEntry] = (),
    ) -> None:
        """Set a model's canary series from status.canary as written (`canary`) and count what changed since the
        status the pass read (`before`): an analysis window that ended (its time is new), a canary that ended
        (it reached Promoted or Aborted: aborted when `history`, status.history as written, has its revision
        Failed; superseded when the spec changed before it was promoted). A pass that writes nothing new counts
        nothing, so a window is counted once, by the pass that wrote it, whichever replica or restart of the
        operator runs the next one."""
        key = (namespace, name)
        with self._lock:
            if canary is None:
                self._drop_canary(namespace, name)
                return
            old = self._canary.get(key)
            series = _CanarySeries(str(canary.revision), canary.phase, canary.achieved_weight is not None,
                                   parse_time(canary.step_started_at) is not None)
            if old is not None and (old.revision, old.phase) != (series.revision, series.phase):
                self.canary_phase.remove(namespace, name, old.revision, old.phase)
            if old is not None and old.achieved and not series.achieved:
                self.canary_weight.remove(namespace, name, "achieved")
            if old is not None and old.started and not series.started:
                self.canary_step_started.remove(namespace, name)
            self.canary_phase.labels(namespace, name, series.revision, series.phase).set(1)
            self.canary_step.labels(namespace, name).set(canary.step)
            self.canary_steps.labels(namespace, name).set(canary.steps)
            self.canary_weight.labels(namespace, name, "configured").set(canary.weight)
            if canary.achieved_weight is not None:
                self.canary_weight.labels(namespace, name, "achieved").set(canary.achieved_weight)
            started = parse_time(canary.step_started_at)
            if started is not None:
                self.canary_step_started.labels(namespace, name).set(started.timestamp())
            self._canary[key] = series
            # Every verdict and outcome series exists from the canary's first pass, at 0, so that increase() sees
            # the first window or abort (a counter series born at 1 shows no increase).
            for verdict in VERDICTS:
                self.canary_windows.labels(namespace, name, verdict)
            for outcome in OUTCOMES:
                self.canary_outcomes.labels(namespace, name, outcome)
            same_canary = before is not None and before.revision == canary.revision
            window = canary.analysis
            if window is not None and not (same_canary and before is not None and before.analysis is not None
                                           and before.analysis.time == window.time):
                self.canary_windows.labels(namespace, name, window.verdict).inc()
            if canary.phase in ("Promoted", "Aborted") and not (same_canary and before is not None
                                                                 and before.phase == canary.phase):
                self.canary_outcomes.labels(namespace, name, _outcome(canary, history)).inc()
            replaced = before is not None and before.revision != canary.revision
            if replaced and before is not None and before.phase in ("Progressing", "Promoting"):
                self.canary_outcomes.labels(namespace, name, "superseded").inc()  # a new revision's canary replaced it

    def _drop_canary(self, namespace: str, name: str) -> None:
        old = self._canary.pop((namespace, name), None)
        if old is None:
            return
        self.canary_phase.remove(namespace, name, old.revision, old.phase)
        for gauge in (self.canary_step, self.canary_steps):
            gauge.remove(namespace, name)
        self.canary_weight.remove(namespace, name, "configured")
        if old.achieved:
            self.canary_weight.remove(namespace, name, "achieved")
        if old.started:
            self.canary_step_started.remove(namespace, name)
        for verdict in VERDICTS:
            self.canary_windows.remove(namespace, name, verdict)
        for outcome in OUTCOMES:
            self.canary_outcomes.remove(namespace, name, outcome)

    def forget(self, namespace: str, name: str) -> None:
        """A deleted model: drop its condition, serving revision and canary series."""
        key = (namespace, name)
        with self._lock:
            for kind, status in self._conditions.pop(key, {}).items():
                self.conditions.remove(namespace, name, kind, status)
            serving = self._serving.pop(key, None)
            if serving is not None:
                self.serving_revision.remove(namespace, name, *serving)
            self._drop_canary(namespace, name)

    def watch_digest_cache(self, counts: Callable[[], tuple[int, int]]) -> None:
        """Export the package digest cache's (hits, misses), read at scrape time."""
        self.registry.register(_DigestCacheCollector(counts))


def _outcome(canary: CanaryStatus, history: Sequence[HistoryEntry]) -> str:
    if canary.phase == "Promoted":
        return "promoted"
    failed = any(e.revision == canary.revision and e.outcome == "Failed" for e in history)
    return "aborted" if failed else "superseded"


class _DigestCacheCollector(Collector):
    def __init__(self, counts: Callable[[], tuple[int, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        hits, misses = self._counts()
        family = CounterMetricFamily(
            "mlmodel_operator_digest_cache_lookups",
            "File digest lookups by result: a hit skips hashing the file (its ETag and size are unchanged).",
            labels=["result"],
        )
        family.add_metric(["hit"], hits)
        family.add_metric(["miss"], misses)
        yield family
