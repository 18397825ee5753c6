"""An analysis window from two scrapes of a revision's runtime pods (pure): parse the Prometheus text each pod
serves on /metrics, then take, per pod, the increase of the runtime's counters and histogram buckets between
the scrapes (a pod restarted in between counts from zero, as PromQL's increase() does), summed over pods.

The p99 is interpolated linearly inside the bucket that holds it, as PromQL's histogram_quantile does
(prometheus_client parses the text but computes no quantiles, hence the few lines below).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from mlmodel_operator.canary.analysis import Window

PREFIX = "mlmodel_runtime"
REQUESTS = f"{PREFIX}_requests_total"
DURATION_BUCKET = f"{PREFIX}_request_duration_seconds_bucket"
SHADOW = f"{PREFIX}_shadow_requests_total"

Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class Samples:
    """One pod's samples: (name, labels) -> value."""

    values: Mapping[tuple[str, Labels], float]

    def select(self, name: str, **match: str) -> Iterable[tuple[dict[str, str], float]]:
        for (sample, labels), value in self.values.items():
            if sample == name:
                as_dict = dict(labels)
                if all(as_dict.get(k) == v for k, v in match.items()):
                    yield as_dict, value


def parse_samples(text: str) -> Samples:
    """The runtime's samples (only `mlmodel_runtime_*`) from Prometheus' text format."""
    values: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(PREFIX):
                values[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
    return Samples(values)


def _increase(before: Samples | None, after: Samples) -> dict[tuple[str, Labels], float]:
    out: dict[tuple[str, Labels], float] = {}
    for key, value in after.values.items():
        old = before.values.get(key, 0.0) if before is not None else 0.0
        out[key] = value - old if value >= old else value  # below the old value: the counter was reset
    return out


def quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The q-quantile of cumulative histogram buckets (upper bound, count), as histogram_quantile computes
    it; None without observations."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # in the open-ended bucket: its lower bound, as Prometheus does
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return ordered[-1][0]


def window_between(
    before: Mapping[str, Samples], after: Mapping[str, Samples], *, model: str, revision: str
) -> Window:
    """`revision`'s window from per-pod scrapes (pod name -> samples) taken at the window's start and end.
    Shadow comparisons are counted where they happen, on the stable runtime, labelled with the candidate's
    revision: pass the stable pods' scrapes too and they are found by that label."""
    requests = errors = client_errors = compared = disagreed = 0.0
    buckets: dict[float, float] = {}
    for pod, now in after.items():
        delta = Samples(_increase(before.get(pod), now))
        for labels, value in delta.select(REQUESTS, model=model, revision=revision):
            requests += value
            code = labels.get("code", "")
            if code.startswith("5"):
                errors += value
            elif code.startswith("4") and code not in ("429", "499"):  # not throttled, not hung up on
                client_errors += value
        for labels, value in delta.select(DURATION_BUCKET, model=model, revision=revision):
            bound = float(labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + value
        for labels, value in delta.select(SHADOW, model=model, candidate=revision):
            if labels.get("result") in ("agree", "disagree"):
                compared += value
            if labels.get("result") == "disagree":
                disagreed += value
    return Window(requests=requests, errors=errors, client_errors=client_errors,
                  p99_seconds=quantile(0.99, buckets.items()), compared=compared, disagreed=disagreed)
