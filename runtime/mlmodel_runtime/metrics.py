"""Prometheus metrics of the runtime, registered on an injected registry (prefix `mlmodel_runtime_`).

`RuntimeMetrics` declares the families; `for_model` binds the label values once, so the hot path
only touches pre-resolved children.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "mlmodel_runtime"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_LABELS = ("model", "revision")


class RuntimeMetrics:
    """All metric families of one runtime process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            f"{PREFIX}_requests",
            "Inference requests by model, revision, HTTP status code and protocol (rest or grpc; a gRPC "
            "answer is counted under the HTTP status of the same meaning, e.g. UNAVAILABLE as 503).",
            (*_LABELS, "code", "protocol"),
            registry=registry,
        )
        self.request_duration = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Time from receiving an inference request to its response, in seconds, by protocol (rest or grpc).",
            (*_LABELS, "protocol"),
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.queue_duration = Histogram(
            f"{PREFIX}_queue_duration_seconds",
            "Time a request waited for the model (queue and batch forming), in seconds.",
            _LABELS,
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.inference_duration = Histogram(
            f"{PREFIX}_inference_duration_seconds",
            "Time the framework took to run one (possibly merged) batch, in seconds.",
            _LABELS,
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            f"{PREFIX}_batch_size",
            "Rows in each batch run by the model (merged requests when dynamic batching is on).",
            _LABELS,
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.inflight = Gauge(
            f"{PREFIX}_inflight_requests",
            "Inference requests being handled now.",
            _LABELS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            f"{PREFIX}_queue_depth",
            "Requests waiting for the model now.",
            _LABELS,
            registry=registry,
        )
        self.request_bytes_reserved = Gauge(
            f"{PREFIX}_request_bytes_reserved",
            "Bytes of the request byte budget held now by inference requests (bodies, decoding, tensors, responses).",
            _LABELS,
            registry=registry,
        )
        self.request_budget_bytes = Gauge(
            f"{PREFIX}_request_budget_bytes",
            "The request byte budget: beyond it requests wait, then get 503 with Retry-After.",
            _LABELS,
            registry=registry,
        )
        self.load_duration = Gauge(
            f"{PREFIX}_model_load_duration_seconds",
            "Time to download, verify, load and warm up the model, in seconds.",
            _LABELS,
            registry=registry,
        )
        self.model_info = Gauge(
            f"{PREFIX}_model_info",
            "The model being served (value 1): format and device as labels.",
            (*_LABELS, "format", "device"),
            registry=registry,
        )

        self.rate_limited = Counter(
            f"{PREFIX}_rate_limited_requests",
            "Inference requests refused by the per-client rate limit (429 over REST, RESOURCE_EXHAUSTED over "
            "gRPC), by protocol; clients are not labels (unbounded, and they may be credentials' subjects).",
            (*_LABELS, "protocol"),
            registry=registry,
        )

        # Drift against the package's baseline (mlmodel_runtime.quality.drift; docs/quality.md).
        self.feature_drift = Gauge(
            f"{PREFIX}_feature_drift",
            "Drift score of an input feature's live window against the package's baseline "
            "(score: psi, ks or js); NaN until the window holds enough rows.",
            (*_LABELS, "feature", "score"),
            registry=registry,
        )
        self.prediction_drift = Gauge(
            f"{PREFIX}_prediction_drift",
            "Drift score of an output column's live window against the package's baseline (score: psi, ks or js).",
            (*_LABELS, "output", "score"),
            registry=registry,
        )
        self.drift_window_rows = Gauge(
            f"{PREFIX}_drift_window_rows",
            "Rows in the sampled window the drift scores are computed from.",
            _LABELS,
            registry=registry,
        )
        # Shadow traffic to a candidate revision (mlmodel_runtime.server.shadow), read by the canary analysis.
        self.shadow_requests = Counter(
            f"{PREFIX}_shadow_requests",
            "Requests copied to a candidate revision, by result: agree or disagree (its answer within the "
            "tolerance of this revision's, or not), error (it failed or timed out), dropped (too many copies "
            "in flight).",
            (*_LABELS, "candidate", "result"),
            registry=registry,
        )
        self.shadow_percent = Gauge(
            f"{PREFIX}_shadow_percent",
            "The share of requests copied to a candidate revision now, in percent (0: no shadow traffic).",
            _LABELS,
            registry=registry,
        )

    def for_model(self, model: str, revision: str) -> ModelMetrics:
        return ModelMetrics(self, model, revision)


class ModelMetrics:
    """The children of every family for one model and revision."""

    def __init__(self, families: RuntimeMetrics, model: str, revision: str) -> None:
        self._families = families
        self._labels = (model, revision)
        self.request_duration = families.request_duration.labels(*self._labels, "rest")
        self.grpc_request_duration = families.request_duration.labels(*self._labels, "grpc")
        self.queue_duration = families.queue_duration.labels(*self._labels)
        self.inference_duration = families.inference_duration.labels(*self._labels)
        self.batch_size = families.batch_size.labels(*self._labels)
        self.inflight = families.inflight.labels(*self._labels)
        self.load_duration = families.load_duration.labels(*self._labels)
        self._queue_depth = families.queue_depth.labels(*self._labels)
        self.rate_limited = {p: families.rate_limited.labels(*self._labels, p) for p in ("rest", "grpc")}
        self._requests: dict[tuple[int, str], Counter] = {}

    def count_request(self, code: int, protocol: str = "rest") -> None:
        child = self._requests.get((code, protocol))
        if child is None:
            child = self._requests[code, protocol] = self._families.requests.labels(*self._labels, str(code), protocol)
        child.inc()

    def request_counts(self) -> dict[int, float]:
        """Requests answered so far, by status code (both protocols)."""
        labels = dict(zip(("model", "revision"), self._labels, strict=True))
        registry = self._families.registry
        counts: dict[int, float] = {}
        for code, protocol in sorted(self._requests):
            sample = {**labels, "code": str(code), "protocol": protocol}
            value = registry.get_sample_value(f"{PREFIX}_requests_total", sample) or 0.0
            counts[code] = counts.get(code, 0.0) + value
        return counts

    def track_queue_depth(self, depth: Callable[[], float]) -> None:
        self._queue_depth.set_function(depth)

    def track_request_budget(self, reserved: Callable[[], float], budget: int) -> None:
        self._families.request_bytes_reserved.labels(*self._labels).set_function(reserved)
        self._families.request_budget_bytes.labels(*self._labels).set(budget)

    def set_model_info(self, format: str, device: str) -> None:
        self._families.model_info.labels(*self._labels, format, device).set(1)
