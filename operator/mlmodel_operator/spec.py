"""The MLModel resource, typed: the one source of truth for the CRD (see `crdgen`) and for parsing.

Field names are camelCase on the wire (aliases) and snake_case in Python. Every field carries a
description, because `kubectl explain` shows it. Cross-field rules are CEL expressions
(`x-kubernetes-validations`) so the API server refuses bad resources at admission; the same rules
are not re-checked here, since every object the operator reads has passed admission.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

GROUP = "serving.mlmodel.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "MLModel"
PLURAL = "mlmodels"
SINGULAR = "mlmodel"

Format = Literal["onnx", "torchscript", "torch-export", "joblib"]
Protocol = Literal["http", "grpc"]
"""Package formats of docs/contracts.md; `joblib` is pickle-based (refused unless configured)."""
AuthMode = Literal["APIKeys", "KubernetesTokens"]
"""spec.auth.mode: API keys from a Secret, or Kubernetes tokens (TokenReview + SubjectAccessReview)."""

PICKLE_FORMATS: frozenset[str] = frozenset({"joblib"})

# The Kubernetes quantity grammar (resource.Quantity), as the core API's own schema uses it.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
S3_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.*$"
HTTP_URL_PATTERN = r"^https?://[^\s/]+(/\S*)?$"

# Labels the operator sets on the runtime pods; users may not override them through podMetadata.
RESERVED_LABEL_PREFIXES = ("app.kubernetes.io/", "serving.mlmodel.io/")


def _quantity_to_str(value: object) -> object:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


Quantity = Annotated[
    str,
    BeforeValidator(_quantity_to_str),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
        }
    ),
]
"""A Kubernetes resource quantity (`500m`, `2`, `8Gi`); integers are accepted and kept as text."""


def _rule(rule: str, message: str, field_path: str | None = None, reason: str | None = None) -> dict[str, str]:
    out = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    if reason:
        out["reason"] = reason
    return out


def _validations(*rules: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


class _Model(BaseModel):
    """camelCase on the wire; unknown fields ignored so an older operator reads a newer object."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
        frozen=True,
    )


# ---------------------------------------------------------------------------------------------
# spec


class Source(_Model):
    """Where the model package lives: an S3-compatible prefix or a single .zip / .tar.gz object."""

    uri: str = Field(
        pattern=S3_URI_PATTERN,
        max_length=1024,
        description=(
            "Package location: s3://bucket/prefix/ (a directory holding deployment_manifest.json, "
            "metadata.json and the model) or s3://bucket/key.zip / .tar.gz (an archive of the same files)."
        ),
    )
    endpoint: str | None = Field(
        default=None,
        pattern=HTTP_URL_PATTERN,
        max_length=512,
        description=(
            "S3-compatible endpoint URL, e.g. http://objectstore.storage:8333. "
            "Defaults to the operator's objectStore.endpoint (AWS S3 when that is unset too)."
        ),
    )
    region: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[a-z0-9-]+$",
        description="Object-store region. Defaults to the operator's objectStore.region.",
    )
    credentials_secret: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description=(
            "Name of a Secret in this namespace with the access key pair (keys AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY unless the operator is configured otherwise). The operator reads it to "
            "validate the package and the runtime pods get it through secretKeyRef; its values never "
            "appear in status, events or logs. Unset: ambient credentials (the operator's environment "
            "when it validates, the pod's when the runtime downloads)."
        ),
    )


class Resources(_Model):
    """Compute resources of each runtime replica."""

    model_config = ConfigDict(
        json_schema_extra=_validations(
            _rule(
                "!has(self.requests) || self.requests.all(k, k in ['cpu', 'memory', 'ephemeral-storage'])",
                "requests may name cpu, memory and ephemeral-storage only; use resources.gpu for GPUs",
                ".requests",
            ),
            _rule(
                "!has(self.limits) || self.limits.all(k, k in ['cpu', 'memory', 'ephemeral-storage'])",
                "limits may name cpu, memory and ephemeral-storage only; use resources.gpu for GPUs",
                ".limits",
            ),
            _rule(
                "!has(self.requests) || !has(self.limits) || self.limits.all(k, !(k in self.requests) || "
                "quantity(string(self.limits[k])).compareTo(quantity(string(self.requests[k]))) >= 0)",
                "each limit must be at least the request of the same resource",
                ".limits",
            ),
        )
    )

    gpu: int = Field(
        default=0,
        ge=0,
        le=64,
        description=(
            "GPUs per replica, requested as the node pool's GPU resource (nvidia.com/gpu by default) in "
            "limits. Needs a node pool with a GPU resource name: spec.nodePool, or the operator's default "
            "pool when nodePool is unset."
        ),
    )
    requests: dict[str, Quantity] | None = Field(
        default=None,
        max_length=3,
        description=(
            "Resource requests per replica (cpu, memory, ephemeral-storage), merged over the operator's "
            "defaultResources key by key."
        ),
    )
    limits: dict[str, Quantity] | None = Field(
        default=None,
        max_length=3,
        description=(
            "Resource limits per replica (cpu, memory, ephemeral-storage), merged over the operator's "
            "defaultResources key by key."
        ),
    )


class Batching(_Model):
    """Dynamic batching in the runtime: concurrent requests merged into one framework call."""

    model_config = ConfigDict(
        json_schema_extra=_validations(
            _rule(
                "!has(self.maxDelayMs) || self.maxDelayMs == 0 || (has(self.maxBatchSize) && self.maxBatchSize > 1)",
                "maxDelayMs requires maxBatchSize > 1 (there is no batch to wait for otherwise)",
                ".maxDelayMs",
            ),
        )
    )

    max_batch_size: int = Field(
        default=0, ge=0, le=4096, description="Most rows in one merged batch; 0 or 1 turns batching off."
    )
    max_delay_ms: int = Field(
        default=0,
        ge=0,
        le=10000,
        description="Longest wait, in milliseconds, for a batch to fill before it runs anyway.",
    )
    max_queue_size: int = Field(
        default=256,
        ge=1,
        le=100000,
        description="Requests queued per replica before the runtime answers 503 with Retry-After.",
    )


class RateLimit(_Model):
    """Per-client rate limit of each replica's runtime: a token bucket per client, shared by REST and gRPC."""

    requests_per_second: float = Field(
        ge=0.001,  # not gt=0: pydantic writes exclusiveMinimum as a number, which OpenAPI v3.0 (CRDs) refuses
        le=1000000,
        description=(
            "Inference requests a second per client and replica (the client: its source address); beyond it "
            "429 with Retry-After (gRPC: RESOURCE_EXHAUSTED)."
        ),
    )
    burst: int = Field(
        default=0, ge=0, le=1000000,
        description="Requests a client may send at once above its rate; 0: the rate rounded up, at least 1.",
    )


class Auth(_Model):
    """Bearer tokens on the model's inference and metadata requests, over REST and gRPC (health and metrics
    stay open to probes and scrapers): 401 without a valid token, 403 without permission. Off when unset."""

    model_config = ConfigDict(
        json_schema_extra=_validations(
            _rule("self.mode != 'APIKeys' || has(self.apiKeysSecret)",
                  "spec.auth.apiKeysSecret is required with mode APIKeys", ".apiKeysSecret"),
            _rule("self.mode == 'APIKeys' || !has(self.apiKeysSecret)",
                  "spec.auth.apiKeysSecret is only for mode APIKeys", ".apiKeysSecret"),
        )
    )

    mode: AuthMode = Field(
        description=(
            "APIKeys: keys from a Secret in the model's namespace; every entry of the Secret is one key's "
            "SHA-256 in hex (the key itself is never stored), compared in constant time. Editing the Secret "
            "adds or revokes keys without a restart, once the kubelet updates the pods' volume (about a minute). "
            "KubernetesTokens: a ServiceAccount (or user) token, checked with a TokenReview and authorized with a "
            "SubjectAccessReview for `verb` on this MLModel; verdicts are cached for a minute. The operator "
            "creates a ServiceAccount <model>-token-reviewer bound to system:auth-delegator for the pods "
            "(docs/access.md)."
        ),
    )
    api_keys_secret: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN,
        description="APIKeys (required there, refused otherwise): the Secret that holds the keys' hashes.",
    )
    verb: str = Field(
        default="get", min_length=1, max_length=63, pattern=r"^[a-z]+$",
        description=(
            "KubernetesTokens: the verb a caller needs on mlmodels.serving.mlmodel.io/<this model> in its "
            "namespace (e.g. get, or a custom verb such as infer granted by a Role)."
        ),
    )


class NetworkPeer(_Model):
    """Pods allowed to call the model: those of a namespace, those with some labels, or both."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    namespace: str | None = Field(
        default=None, min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN,
        description="Pods of this namespace; unset: of the model's own namespace.",
    )
    pod_labels: dict[str, str] | None = Field(
        default=None, description="Only pods with these labels; unset: every pod of the namespace.",
    )


class NetworkPolicySpec(_Model):
    """A NetworkPolicy for the model's pods (docs/access.md): inference ports from `allowFrom` only, the metrics
    port from the configured scraper and the operator only, egress to DNS, the object store and (with
    KubernetesTokens auth) the API server only. Enforced only where the cluster's network plugin enforces
    NetworkPolicy."""

    enabled: bool = Field(
        default=True,
        description="false: no NetworkPolicy for this model, even where the operator's configuration gives one "
        "to every model.",
    )
    allow_from: list[NetworkPeer] = Field(
        default_factory=list, max_length=32,
        description="Who may call the inference ports (8080 REST, 8081 gRPC); empty: every pod of the model's "
        "namespace.",
    )


class CanaryStep(_Model):
    """One step of a canary: a share of the traffic for the candidate, held for a pause."""

    weight: int = Field(
        ge=0, le=100,
        description="Percent of the model's traffic for the candidate revision in this step (the weight achieved "
        "is in status.canary: without Gateway API it is the candidate's share of the ready replicas). 0: the "
        "candidate answers shadow copies only (needs spec.rollout.canary.shadow) and no client request.",
    )
    pause_seconds: int = Field(
        default=0, ge=0, le=86400,
        description="Seconds the step lasts at least; it ends once that long has passed and at least one "
        "analysis window in it passed.",
    )
    until_promoted: bool = Field(
        default=False,
        description="The step ends only on `mlmodel promote` (the annotation serving.mlmodel.io/promote set to a new "
        "value); a failed analysis window still aborts it.",
    )


class CanaryAnalysis(_Model):
    """How each analysis window judges the candidate against the stable revision, from their runtimes' own
    metrics (scraped from the pods at the window's start and end)."""

    window_seconds: int = Field(default=60, ge=5, le=3600, description="Length of one analysis window.")
    min_requests: int = Field(
        default=20, ge=1, le=1000000,
        description="Fewest requests the candidate must answer in a window for it to count (fewer: inconclusive, "
        "never a pass).",
    )
    max_error_ratio: float = Field(
        default=0.01, ge=0, le=1,
        description="Most server errors (5xx) per request the candidate may answer in a window.",
    )
    max_latency_ratio: float = Field(
        default=1.5, ge=1, le=100,
        description="Most the candidate's p99 latency may be, as a multiple of the stable revision's in the same "
        "window (judged only when the stable revision served at least minRequests too).",
    )
    max_disagreement: float | None = Field(
        default=None, ge=0, le=1,
        description="With shadow traffic: most of the shadowed requests whose candidate answer may differ from the "
        "stable revision's beyond the tolerance, per window (at least minRequests compared).",
    )


class CanaryShadow(_Model):
    """Live requests copied to the candidate by the stable revision's runtimes, after they answered: the
    candidate's answers are compared with the stable ones and never returned to a client."""

    percent: int = Field(ge=1, le=100, description="Percent of the stable revision's requests copied.")
    absolute_tolerance: float = Field(default=1e-5, ge=0, description="Outputs agree within this absolute "
                                      "difference plus relativeTolerance times the stable value (numpy.allclose).")
    relative_tolerance: float = Field(default=1e-3, ge=0, description="See absoluteTolerance.")


class Canary(_Model):
    """A canary rollout: the candidate revision runs beside the stable one in its own Deployment
    (<model>-canary), takes a growing share of the traffic step by step, and is promoted after the last step or
    aborted (then rolled back, with reason CanaryAborted) on the first failed analysis window."""

    model_config = ConfigDict(
        json_schema_extra=_validations(
            _rule("has(self.shadow) || self.steps.all(s, s.weight > 0)",
                  "a step of weight 0 (shadow traffic only) needs spec.rollout.canary.shadow", ".steps"),
            _rule("has(self.shadow) || !has(self.analysis) || !has(self.analysis.maxDisagreement)",
                  "analysis.maxDisagreement needs spec.rollout.canary.shadow", ".analysis"),
        )
    )

    steps: list[CanaryStep] = Field(
        min_length=1, max_length=20, description="The steps, in order; the candidate is promoted after the last."
    )
    analysis: CanaryAnalysis = Field(
        default_factory=CanaryAnalysis,
        json_schema_extra={"default": {}},
        description="The bounds each analysis window checks.",
    )
    shadow: CanaryShadow | None = Field(
        default=None,
        description="Shadow traffic to the candidate during every step; steps of weight 0 are shadow only.",
    )
    max_extra_replicas: int = Field(
        default=1, ge=1, le=100,
        description="Most runtime pods beyond spec.replicas while the canary runs (its GPU budget): the candidate "
        "gets the replicas its weight needs, at least one, and the stable revision gives up pods beyond this.",
    )


class Rollout(_Model):
    """How a new revision replaces the serving one."""

    model_config = ConfigDict(
        json_schema_extra=_validations(
            # has(): the rules also run on the field's schema default ({}), where nested defaults are not applied.
            _rule("!has(self.strategy) || self.strategy != 'Canary' || has(self.canary)",
                  "spec.rollout.canary is required when spec.rollout.strategy is Canary", ".canary"),
            _rule("!has(self.canary) || (has(self.strategy) && self.strategy == 'Canary')",
                  "spec.rollout.canary is only used with spec.rollout.strategy Canary", ".canary"),
        )
    )

    strategy: Literal["Surge", "Replace", "Canary"] = Field(
        default="Surge",
        description=(
            "Surge: new pods start first and old ones go once the new are ready (needs room for one "
            "extra replica). Replace: one old pod goes first, then its replacement starts (for GPU pools "
            "without room for a surge; a single replica means a short outage). Canary: a new revision first "
            "serves a share of the traffic beside the serving one, judged by analysis (spec.rollout.canary); "
            "the first revision of a model, with none serving yet, rolls out as Surge."
        ),
    )
    canary: Canary | None = Field(default=None, description="The canary's steps and analysis (strategy Canary).")
    progress_deadline_seconds: int = Field(
        default=600,
        ge=30,
        le=86400,
        description=(
            "Seconds a rollout may make no progress before it is reported as failed "
            "(the Deployment's progressDeadlineSeconds)."
        ),
    )
    auto_rollback: bool = Field(
        default=True,
        description=(
            "Roll back to the last revision that served when a new revision fails (bad package, crash "
            "loop, probes never pass, progress deadline exceeded, unschedulable)."
        ),
    )


class PodMetadata(_Model):
    """Labels and annotations copied onto the runtime pods."""

    model_config = ConfigDict(
        json_schema_extra=_validations(
            _rule(
                "!has(self.labels) || self.labels.all(k, "
                + " && ".join(f"!k.startsWith('{prefix}')" for prefix in RESERVED_LABEL_PREFIXES) + ")",
                "labels under " + " and ".join(RESERVED_LABEL_PREFIXES) + " are set by the operator",
                ".labels",
            ),
        )
    )

    labels: dict[str, Annotated[str, Field(max_length=63)]] | None = Field(
        default=None, max_length=64, description="Labels added to every runtime pod."
    )
    annotations: dict[str, Annotated[str, Field(max_length=4096)]] | None = Field(
        default=None, max_length=64, description="Annotations added to every runtime pod."
    )


class RollbackTo(_Model):
    """An earlier revision to serve instead of spec.source."""

    revision: int = Field(ge=1, description="A revision number from status.history.")


METRIC_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
MetricBounds = Annotated[
    dict[Annotated[str, Field(pattern=METRIC_NAME_PATTERN)], float],
    WithJsonSchema({"type": "object", "maxProperties": 64, "additionalProperties": {"type": "number"},
                    "propertyNames": {"pattern": METRIC_NAME_PATTERN}}),
]


class QualityGate(_Model):
    """Bounds on the training metrics in the package's metadata.json (`training.metrics`), checked while the
    package is validated, before anything is rolled out (docs/quality.md)."""

    minimums: MetricBounds | None = Field(
        default=None,
        description=(
            "Metric name -> smallest acceptable value, e.g. {accuracy: 0.9, roc_auc: 0.95}. A metric the gate "
            "names that the package does not report fails the gate."
        ),
    )
    maximums: MetricBounds | None = Field(
        default=None,
        description="Metric name -> largest acceptable value, e.g. {log_loss: 0.3}.",
    )


AutoscalingMetric = Literal["InFlightRequests", "QueueDepth", "RequestsPerSecond"]
"""The runtime's own per-replica signals (docs/autoscaling.md): mlmodel_runtime_inflight_requests,
mlmodel_runtime_queue_depth and the rate of mlmodel_runtime_requests_total."""


class AutoscalingTarget(_Model):
    """What each replica should carry on average; the autoscaler adds or removes replicas to keep it there."""

    metric: AutoscalingMetric = Field(
        description=(
            "InFlightRequests: requests being handled (queued included) per replica; QueueDepth: requests "
            "waiting for the model per replica; RequestsPerSecond: requests answered per second per replica."
        ),
    )
    average_value: float = Field(
        ge=0.001, le=1000000, description="The per-replica value to hold, e.g. 4 in-flight requests per replica."
    )


class ScalingPolicy(_Model):
    """At most `value` pods (or percent of the current replicas) added or removed per `periodSeconds`."""

    type: Literal["Pods", "Percent"] = Field(description="Pods: a number of replicas; Percent: of the current ones.")
    value: int = Field(ge=1, le=10000, description="How many pods, or what percentage.")
    period_seconds: int = Field(ge=1, le=1800, description="The window the policy counts changes over.")


class ScalingRules(_Model):
    """The HPA's rules for one direction (autoscaling/v2 HPAScalingRules)."""

    stabilization_window_seconds: int | None = Field(
        default=None, ge=0, le=3600,
        description="Seconds of past recommendations considered; the most conservative one wins.",
    )
    select_policy: Literal["Max", "Min", "Disabled"] | None = Field(
        default=None, description="Which policy wins when several apply; Disabled: never scale this way.",
    )
    policies: list[ScalingPolicy] | None = Field(
        default=None, max_length=10, description="Limits on the rate of change.",
    )


class AutoscalingBehavior(_Model):
    """Scale-up and scale-down rules; what is left out takes the model-server defaults (docs/autoscaling.md):
    up at once (no stabilization, double or +4 pods every 15 s), down slowly (5 minutes' window, 1 pod a minute)."""

    scale_up: ScalingRules | None = Field(default=None, description="How fast replicas are added.")
    scale_down: ScalingRules | None = Field(default=None, description="How fast replicas are removed.")


class Autoscaling(_Model):
    """Replicas set by the Kubernetes HPA on one of the runtime's own signals (KEDA from Prometheus, or a
    custom-metrics adapter: the operator's configuration says which); the HPA scales the MLModel's scale
    subresource, so it owns spec.replicas."""

    model_config = ConfigDict(
        json_schema_extra=_validations(
            _rule("self.minReplicas <= self.maxReplicas", "minReplicas must not exceed maxReplicas", ".minReplicas"),
        )
    )

    min_replicas: int = Field(default=1, ge=1, le=1000, description="Fewest replicas.")
    max_replicas: int = Field(ge=1, le=1000, description="Most replicas.")
    target: AutoscalingTarget = Field(description="The per-replica signal and the value to hold.")
    behavior: AutoscalingBehavior | None = Field(
        default=None, description="Scale-up and scale-down rules (model-server defaults for what is left out).",
    )


# spec.replicas and spec.autoscaling may not both be written, except by the autoscaler: once autoscaling is on,
# the HPA writes spec.replicas through the scale subresource (an update of an object that had autoscaling).
_REPLICAS_XOR_AUTOSCALING: dict[str, Any] = {
    "rule": "!has(self.autoscaling) || !has(self.replicas) || (oldSelf.hasValue() && has(oldSelf.value().autoscaling))",
    "message": "spec.replicas and spec.autoscaling are mutually exclusive: with autoscaling the autoscaler sets the "
    "replicas through the scale subresource; leave spec.replicas out (remove it when turning autoscaling on)",
    "fieldPath": ".replicas",
    "optionalOldSelf": True,
}


class MLModelSpec(_Model):
    """The desired state of a served model."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_REPLICAS_XOR_AUTOSCALING]})

    source: Source = Field(description="Where the model package is and how to read it.")
    format: Format | None = Field(
        default=None,
        description=(
            "Model format. Unset: taken from the package's metadata.json; set: must match it. "
            "joblib is pickle-based and refused unless the operator allows pickle."
        ),
    )
    replicas: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description=(
            "Runtime replicas (the scale subresource: kubectl scale and an HPA set this). Unset: 1, or with "
            "spec.autoscaling what the autoscaler sets; not to be written together with spec.autoscaling."
        ),
    )
    node_pool: str | None = Field(
        default=None,
        max_length=63,
        pattern=DNS_LABEL_PATTERN,
        description=(
            "Named node pool from the operator's configuration (node selector, tolerations, GPU "
            "resource). Unset: the pool marked default there."
        ),
    )
    resources: Resources = Field(
        default_factory=Resources,
        json_schema_extra={"default": {}},
        description="GPUs, requests and limits of each replica.",
    )
    batching: Batching = Field(
        default_factory=Batching,
        json_schema_extra={"default": {}},
        description="Dynamic batching settings passed to the runtime.",
    )
    rollout: Rollout = Field(
        default_factory=Rollout,
        json_schema_extra={"default": {}},
        description="Rollout strategy, progress deadline and automatic rollback.",
    )
    revision_history_limit: int = Field(
        default=10,
        ge=1,
        le=100,
        description="Revisions kept in status.history (and old ReplicaSets kept by the Deployment).",
    )
    rollback_to: RollbackTo | None = Field(
        default=None,
        description=(
            "Serve this earlier revision from status.history instead of spec.source, until removed "
            "(a manual rollback for kubectl users; with GitOps, revert the change in Git instead). "
            "The revision is rendered again from its history entry: no download, no validation."
        ),
    )
    pod_metadata: PodMetadata = Field(
        default_factory=PodMetadata,
        json_schema_extra={"default": {}},
        description="Labels and annotations copied onto the runtime pods.",
    )
    autoscaling: Autoscaling | None = Field(
        default=None,
        description=(
            "Replicas from the HPA on in-flight requests, queue depth or requests per second per replica "
            "(docs/autoscaling.md); mutually exclusive with spec.replicas."
        ),
    )
    protocol: Protocol = Field(
        default="http",
        description=(
            "The protocol the kubelet probes the runtime with. Both are always served: the Open Inference "
            "Protocol over REST (port 8080, name http) and gRPC (port 8081, name grpc). grpc: native gRPC "
            "probes on grpc.health.v1 (startup 'started', readiness '', liveness 'live')."
        ),
    )
    rate_limit: RateLimit | None = Field(
        default=None, description="Per-client rate limit of inference requests in each replica; unset: none."
    )
    auth: Auth | None = Field(default=None, description="Request authentication; unset: none (anyone who can reach "
                              "the Service may call the model).")
    network_policy: NetworkPolicySpec | None = Field(
        default=None,
        description="A NetworkPolicy for the model's pods; unset: as the operator's configuration says "
        "(networkPolicy.enabled, off by default).",
    )
    quality_gate: QualityGate | None = Field(
        default=None,
        description=(
            "Minimums and maximums for the package's training metrics; a package outside them (or without a "
            "metric they name) is Stalled with reason QualityGateFailed and the serving revision is left as it is."
        ),
    )


    def desired_replicas(self) -> int:
        """spec.replicas; unset: 1, or with spec.autoscaling its minReplicas until the autoscaler sets them."""
        if self.replicas is not None:
            return self.replicas
        return self.autoscaling.min_replicas if self.autoscaling is not None else 1


# ---------------------------------------------------------------------------------------------
# status

ConditionType = Literal["Ready", "Reconciling", "Stalled", "PackageValid", "Available", "RolledBack"]
"""The conditions of status.conditions, in the order status lists them."""

Outcome = Literal["Serving", "Superseded", "Failed", "RolledBack"]
"""What became of a revision: it serves; a later one replaced it; it failed (crash loop, never ready,
unschedulable, ...); an earlier one replaced it (a manual rollback or a revert of the spec)."""

# How many revisions status.history can hold (spec.revisionHistoryLimit's maximum).
MAX_HISTORY = 100


class Condition(_Model):
    """A kstatus / metav1.Condition-shaped condition."""

    type: str = Field(
        max_length=316,
        description="Condition type: Ready, Reconciling, Stalled, PackageValid, Available, RolledBack.",
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(max_length=1024, description="CamelCase reason for the condition's last transition.")
    message: str = Field(default="", max_length=32768, description="Human-readable detail.")
    last_transition_time: str = Field(
        description="When the status last changed (RFC 3339); unchanged while the status stays the same."
    )
    observed_generation: int = Field(
        default=0, ge=0, description="The metadata.generation this condition was computed for."
    )


class PackageStatus(_Model):
    """The validated package of the desired revision."""

    uri: str = Field(description="The package URI that was validated.")
    digest: str = Field(description="Package digest, sha256:<hex> of deployment_manifest.json.")
    size: int = Field(ge=0, description="Total size of the package's files in bytes.")
    format: str = Field(description="Model format of the package.")
    examples: bool | None = Field(
        default=None, description="The package carries examples.json, which the runtime runs before it serves."
    )


class RevisionSettings(_Model):
    """The spec fields a revision's pod template is rendered from, kept so that it can be rendered again.

    Each field has the name and type of the MLModelSpec field it keeps; every other MLModelSpec field is listed
    in OUTSIDE_REVISIONS (it applies to whichever revision serves). A test holds the three together, so a new
    spec field that the pod template is rendered from cannot be left to come from the current spec on rollback.
    """

    OUTSIDE_REVISIONS: ClassVar[frozenset[str]] = frozenset(
        {"replicas", "rollout", "revision_history_limit", "rollback_to", "quality_gate", "autoscaling",
         "network_policy"}
    )

    source: Source = Field(description="spec.source of the revision.")
    format: Format | None = Field(default=None, description="spec.format of the revision.")
    node_pool: str | None = Field(default=None, description="spec.nodePool of the revision.")
    resources: Resources = Field(default_factory=Resources, description="spec.resources of the revision.")
    batching: Batching = Field(default_factory=Batching, description="spec.batching of the revision.")
    pod_metadata: PodMetadata = Field(default_factory=PodMetadata, description="spec.podMetadata of the revision.")
    protocol: Protocol = Field(default="http", description="spec.protocol of the revision.")
    rate_limit: RateLimit | None = Field(default=None, description="spec.rateLimit of the revision.")
    auth: Auth | None = Field(default=None, description="spec.auth of the revision.")

    @classmethod
    def of(cls, spec: MLModelSpec) -> RevisionSettings:
        return cls(**{name: getattr(spec, name) for name in cls.model_fields})

    def apply_to(self, spec: MLModelSpec) -> MLModelSpec:
        """`spec` with this revision's render settings (OUTSIDE_REVISIONS stay as they are)."""
        return spec.model_copy(update={name: getattr(self, name) for name in type(self).model_fields})


class RevisionRecord(_Model):
    """A revision: what it serves and everything needed to render its pod template again exactly."""

    revision: int = Field(ge=1, description="The revision number (the pod template's serving.mlmodel.io/revision).")
    uri: str = Field(description="The package URI.")
    digest: str = Field(description="Package digest, sha256:<hex> of deployment_manifest.json.")
    format: str = Field(description="Model format of the package.")
    size: int = Field(ge=0, description="Total size of the package's files in bytes.")
    created_at: str = Field(description="When the revision was first rolled out (RFC 3339).")
    fingerprint: str = Field(description="Hash of the revision's pod template without its number.")
    settings: RevisionSettings = Field(description="The spec fields the pod template is rendered from.")
    image: str | None = Field(
        default=None,
        description="The runtime image the revision was rendered with (from the operator's configuration at the "
        "time), so that rolling back to it also brings back its runtime, e.g. after an upgrade to a broken one.",
    )
    examples: bool | None = Field(
        default=None, description="The revision's package carries examples.json (run before it serves)."
    )

    def package(self) -> PackageStatus:
        return PackageStatus(uri=self.uri, digest=self.digest, size=self.size, format=self.format,
                             examples=self.examples)


class HistoryEntry(RevisionRecord):
    """A revision in status.history, with what became of it."""

    outcome: Outcome = Field(description="Serving, Superseded, Failed or RolledBack.")
    reason: str | None = Field(default=None, description="Why (CamelCase), e.g. CrashLoop for a Failed revision.")
    message: str | None = Field(default=None, description="Human-readable detail.")


def serving_entry(history: Iterable[HistoryEntry]) -> HistoryEntry | None:
    """The revision that serves: the history's one entry with outcome Serving."""
    return next((entry for entry in history if entry.outcome == "Serving"), None)


class QualityStatus(_Model):
    """The quality checks of the desired revision's package (docs/quality.md)."""

    revision: int | None = Field(default=None, description="The revision they are about (none: it got no number).")
    examples: Literal["Passed", "Failed", "Pending", "NotRun", "NoExamples"] = Field(
        description="Passed: the revision served, so the runtime's run of examples.json passed; Failed: "
        "ExamplesMismatch; Pending: rolling out; NotRun: the revision failed otherwise, or its package was refused; "
        "NoExamples: the package has none."
    )
    gate: Literal["Passed", "Failed", "NotSet"] = Field(
        description="spec.qualityGate against the package's training metrics; NotSet: no gate (or spec.rollbackTo)."
    )


class AutoscalingStatus(_Model):
    """What the HPA of spec.autoscaling wants and whether it can scale (its status, read by the operator)."""

    hpa: str = Field(description="The HorizontalPodAutoscaler (KEDA's, when KEDA carries out spec.autoscaling).")
    desired_replicas: int | None = Field(default=None, description="The replicas the HPA last asked for.")
    current_replicas: int | None = Field(default=None, description="The replicas the HPA last saw.")
    able_to_scale: bool | None = Field(default=None, description="The HPA's AbleToScale condition (None: unknown).")
    scaling_active: bool | None = Field(
        default=None, description="The HPA's ScalingActive condition: False when its metric cannot be read."
    )
    at_limit: str | None = Field(
        default=None, description="minReplicas or maxReplicas: what the HPA wants is at that bound."
    )
    problem: str | None = Field(
        default=None, description="Why the HPA cannot scale (reason: message of its failing condition); the replicas "
        "stay as they are meanwhile.",
    )


class CanaryAnalysisStatus(_Model):
    """The last analysis window that ended: its verdict and the figures it was judged on."""

    verdict: Literal["Pass", "Fail", "Inconclusive"] = Field(description="What the window found.")
    message: str = Field(description="The figures, e.g. 'error ratio 4.8% > 1% over 600 requests'.")
    time: str = Field(description="When the window ended (RFC 3339).")
    candidate_requests: int = Field(default=0, ge=0, description="Requests the candidate answered in the window.")
    candidate_errors: int = Field(
        default=0, ge=0, description="Of those, failed: 5xx, and 4xx beyond the stable revision's share."
    )
    candidate_p99_seconds: float | None = Field(default=None, description="The candidate's p99 latency.")
    stable_requests: int = Field(default=0, ge=0, description="Requests the stable revision answered.")
    stable_p99_seconds: float | None = Field(default=None, description="The stable revision's p99 latency.")


class CanaryStatus(_Model):
    """The canary of spec.rollout.strategy Canary: where it is, the traffic it gets, the last analysis."""

    revision: int = Field(description="The candidate revision.")
    stable_revision: int = Field(description="The revision serving beside it (rolled back to on abort).")
    phase: Literal["Progressing", "Promoting", "Promoted", "Aborted"] = Field(
        description="Progressing: stepping through spec.rollout.canary.steps; Promoting: the candidate replaces "
        "the stable revision in the model's Deployment; Promoted: it serves; Aborted: it failed (status.history says "
        "why) and the stable revision serves again."
    )
    step: int = Field(ge=1, description="The step the canary is at (1 is the first).")
    steps: int = Field(ge=1, description="How many steps there are.")
    weight: int = Field(ge=0, le=100, description="The step's weight: percent of the traffic meant for the candidate.")
    achieved_weight: int | None = Field(
        default=None, ge=0, le=100,
        description="Percent of the traffic the candidate gets now: its share of the ready replicas behind the "
        "model's Service (mode ReplicaRatio).",
    )
    mode: Literal["ReplicaRatio", "HTTPRoute"] = Field(
        default="ReplicaRatio",
        description="How the traffic is split: ReplicaRatio, by the stable and candidate replicas behind the model's "
        "Service; HTTPRoute, by the weights of the model's HTTPRoute on the configured Gateway (exact per request; "
        "the model's Service then reaches the stable revision only).",
    )
    stable_replicas: int = Field(ge=0, description="Replicas of the stable revision while the canary runs.")
    candidate_replicas: int = Field(ge=0, description="Replicas of the candidate (Deployment <model>-canary).")
    step_started_at: str = Field(description="When the current step began (RFC 3339).")
    passed_windows: int = Field(default=0, ge=0, description="Analysis windows passed in the current step.")
    analysis: CanaryAnalysisStatus | None = Field(default=None, description="The last analysis window that ended.")
    message: str = Field(default="", description="What the canary waits for, or why it ended.")
    last_promote: str | None = Field(
        default=None, description="The last value of the serving.mlmodel.io/promote annotation acted on."
    )
    last_abort: str | None = Field(
        default=None, description="The last value of the serving.mlmodel.io/abort annotation acted on."
    )


class MLModelStatus(_Model):
    """The observed state, written by the operator once per reconcile pass."""

    observed_generation: int | None = Field(
        default=None, description="The metadata.generation of the MLModel that this status describes."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
        description="Ready, Reconciling, Stalled, PackageValid, Available and RolledBack, kstatus style.",
    )
    replicas: int | None = Field(default=None, description="Runtime pods that exist (the scale subresource).")
    available_replicas: int | None = Field(default=None, description="Runtime pods available to serve.")
    updated_replicas: int | None = Field(default=None, description="Runtime pods of the desired revision.")
    availability: str | None = Field(default=None, description="available/desired replicas, e.g. 2/3.")
    selector: str | None = Field(
        default=None, description="Label selector of the runtime pods (the scale subresource, for an HPA)."
    )
    url: str | None = Field(default=None, description="In-cluster URL of the model's V2 inference endpoint.")
    revision: int | None = Field(default=None, description="The revision now serving.")
    desired_revision: int | None = Field(
        default=None,
        description=(
            "The revision the spec asks for (spec.source, or spec.rollbackTo); after an automatic rollback, the "
            "failed one."
        ),
    )
    package: PackageStatus | None = Field(default=None, description="The validated package of the desired revision.")
    history: list[HistoryEntry] = Field(
        default_factory=list,
        max_length=MAX_HISTORY,
        description=(
            "Revisions by number, oldest first, at most spec.revisionHistoryLimit (the serving one is never "
            "dropped). A revision being rolled out is in status.rollout until it serves or fails."
        ),
    )
    rollout: RevisionRecord | None = Field(
        default=None, description="The revision being rolled out, until it serves (or fails, or is replaced)."
    )
    last_retry: str | None = Field(
        default=None,
        description="The last value of the serving.mlmodel.io/retry annotation acted on (a new value retries once).",
    )
    quality: QualityStatus | None = Field(
        default=None, description="Whether the desired revision passed its examples and spec.qualityGate."
    )
    autoscaling: AutoscalingStatus | None = Field(
        default=None, description="The HPA of spec.autoscaling: desired and current replicas, whether it can scale."
    )
    canary: CanaryStatus | None = Field(
        default=None, description="The canary of the revision rolling out with strategy Canary, or of the last one."
    )


# ---------------------------------------------------------------------------------------------
# the object


class ObjectMeta(_Model):
    """The parts of metadata the operator uses."""

    name: str
    namespace: str
    uid: str = ""
    generation: int = 0
    resource_version: str = ""


class MLModel(_Model):
    """An MLModel as the operator reads it."""

    api_version: str = API_VERSION
    kind: str = KIND
    metadata: ObjectMeta
    spec: MLModelSpec
    status: MLModelStatus = Field(default_factory=MLModelStatus)

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"
