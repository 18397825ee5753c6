"""The operator's own Prometheus metrics, on an injected registry (tests use a fresh one)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


class OperatorMetrics:
    """Counters and histograms of reconcile passes, API writes and package validations."""

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
            "Package validations by result (valid, or the failure reason).",
            ["result"],
            registry=registry,
        )

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
