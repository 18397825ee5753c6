"""The operator's own Prometheus metrics, on an injected registry (tests use a fresh one).

Per-model series (conditions, the serving revision) follow each model's status and go when it is deleted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


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
        self._lock = threading.Lock()
        self._conditions: dict[tuple[str, str], dict[str, str]] = {}
        self._serving: dict[tuple[str, str], tuple[str, str]] = {}

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

    def forget(self, namespace: str, name: str) -> None:
        """A deleted model: drop its condition and serving revision series."""
        key = (namespace, name)
        with self._lock:
            for kind, status in self._conditions.pop(key, {}).items():
                self.conditions.remove(namespace, name, kind, status)
            serving = self._serving.pop(key, None)
            if serving is not None:
                self.serving_revision.remove(namespace, name, *serving)

    def watch_digest_cache(self, counts: Callable[[], tuple[int, int]]) -> None:
        """Export the package digest cache's (hits, misses), read at scrape time."""
        self.registry.register(_DigestCacheCollector(counts))


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
