"""Operator configuration: typed, loaded from the YAML file the chart mounts (`--config FILE`).

Field names are camelCase in the file. Environment variables override it: the prefix
`MLMODEL_OPERATOR_` and the snake_case name, nested keys joined by `__`
(`MLMODEL_OPERATOR_ALLOW_PICKLE=true`, `MLMODEL_OPERATOR_RESYNC__INTERVAL_SECONDS=30`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel, to_snake
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mlmodel_operator.spec import PICKLE_FORMATS, Format, Quantity

# The formats allowed unless configured otherwise: every format of the spec but the pickle-based ones.
_SAFE_FORMATS: tuple[Format, ...] = tuple(f for f in get_args(Format) if f not in PICKLE_FORMATS)


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )


class Toleration(_Section):
    """A pod toleration (the core v1 Toleration fields)."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None

    def to_k8s(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class NodePool(_Section):
    """A named group of nodes that models can ask for with spec.nodePool."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    default: bool = Field(default=False, description="Used when a model names no pool; at most one.")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    gpu_resource_name: str | None = Field(
        default=None, description="Extended resource of the pool's GPUs, e.g. nvidia.com/gpu; unset: no GPUs."
    )


class ResourceDefaults(_Section):
    """Requests and limits of a runtime container when the model does not set them."""

    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)


class SecretKeys(_Section):
    """Keys of the credentials Secret that hold the access key pair."""

    access_key_id: str = "AWS_ACCESS_KEY_ID"
    secret_access_key: str = "AWS_SECRET_ACCESS_KEY"


class ObjectStoreDefaults(_Section):
    """Defaults for models that do not set source.endpoint / source.region."""

    endpoint: str | None = None
    region: str = "us-east-1"
    secret_keys: SecretKeys = Field(default_factory=SecretKeys)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    read_timeout_seconds: float = Field(default=30.0, gt=0)


class Watch(_Section):
    """Which namespaces the operator serves."""

    namespaces: list[str] = Field(default_factory=list, description="Empty: all namespaces.")


class Resync(_Section):
    """The periodic reconcile of every model (besides reacting to changes)."""

    interval_seconds: float = Field(default=60.0, gt=0)
    # Retrying a pass that hit a temporary error (object store unreachable): the first delay,
    # doubled on each further attempt up to the maximum.
    retry_delay_seconds: float = Field(default=5.0, gt=0)
    retry_max_delay_seconds: float = Field(default=300.0, gt=0)


class Startup(_Section):
    """How long the runtime may take to download, verify and load a package before it is restarted.

    budget = baseSeconds + package size / bytesPerSecond, capped at maxSeconds; the startup probe
    gets failureThreshold = ceil(budget / periodSeconds).
    """

    base_seconds: int = Field(default=60, ge=1)
    bytes_per_second: int = Field(default=25 * 1024 * 1024, ge=1)
    max_seconds: int = Field(default=3600, ge=1)
    period_seconds: int = Field(default=5, ge=1, le=60)


class FailureDetection(_Section):
    """When a revision being rolled out has failed, as early as the evidence allows (it is then rolled back
    when spec.rollout.autoRollback is on). The Deployment's progress deadline applies besides these."""

    crash_loop_restarts: int = Field(
        default=3, ge=1, description="Restarts of a runtime container of the new revision that make a crash loop."
    )
    never_ready_seconds: float = Field(
        default=120.0, gt=0, description="Running, started (model loaded) but not ready for this long: NeverReady."
    )
    unschedulable_seconds: float = Field(
        default=180.0, gt=0, description="A pod of the new revision that cannot be scheduled for this long."
    )
    startup_grace_seconds: float = Field(
        default=30.0, ge=0, description="Beyond the startup probe's budget, before a container that has not started."
    )
    stuck_seconds: float = Field(
        default=180.0, gt=0, description="Image pull or container configuration errors for this long."
    )
    check_interval_seconds: float = Field(
        default=5.0, gt=0, description="How often a model is checked while one of its revisions rolls out."
    )


class Runtime(_Section):
    """Settings of the runtime pods that are not per model."""

    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    run_as_user: int = Field(default=65532, ge=1)
    service_account_name: str | None = None
    termination_grace_period_seconds: int = Field(default=30, ge=0)
    drain_delay_seconds: int = Field(
        default=5, ge=0, le=60,
        description="A terminating pod keeps taking new connections this long (a preStop sleep) before its "
        "SIGTERM, while kube-proxy and load balancers drop it from the Service's endpoints; 0: none.")
    scratch_size_limit: Quantity = "1Gi"

    @model_validator(mode="after")
    def _drain_fits_grace(self) -> Runtime:
        if self.drain_delay_seconds and self.drain_delay_seconds >= self.termination_grace_period_seconds:
            raise ValueError("runtime.drainDelaySeconds must be shorter than runtime.terminationGracePeriodSeconds "
                             "(the pod is killed when the grace period ends, drained or not)")
        return self


class LeaderElection(_Section):
    """Lease-based election of the one replica that reconciles (client-go's protocol and defaults)."""

    enabled: bool = False
    lease_name: str = "mlmodel-operator"
    lease_namespace: str | None = Field(
        default=None, description="Default: the POD_NAMESPACE environment variable, else `default`."
    )
    lease_duration_seconds: float = Field(default=15.0, gt=0)
    renew_deadline_seconds: float = Field(default=10.0, gt=0)
    retry_period_seconds: float = Field(default=2.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LeaderElection:
        if not self.retry_period_seconds < self.renew_deadline_seconds < self.lease_duration_seconds:
            raise ValueError("leaderElection: retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds")
        return self


# --- autoscaling (spec.autoscaling; docs/autoscaling.md) ----------------------------------------------------


class CustomMetricNames(_Section):
    """Pods metrics of the custom metrics API (custom.metrics.k8s.io) that the HPA reads per signal, as the
    cluster's adapter (e.g. prometheus-adapter) names them."""

    in_flight_requests: str = "mlmodel_runtime_inflight_requests"
    queue_depth: str = "mlmodel_runtime_queue_depth"
    requests_per_second: str = "mlmodel_runtime_requests_per_second"


class AutoscalingEngine(_Section):
    """Which engine carries out spec.autoscaling: KEDA (a ScaledObject with a Prometheus trigger; KEDA creates
    and feeds the HPA) or an autoscaling/v2 HPA on the custom metrics API of an adapter the cluster runs."""

    engine: Literal["keda", "hpa"] = "keda"
    prometheus_address: str = Field(
        default="http://prometheus-operated.monitoring.svc:9090",
        description="The Prometheus that scrapes the runtime pods (KEDA's Prometheus trigger queries it).",
    )
    polling_interval_seconds: int = Field(default=15, ge=1, le=3600, description="KEDA's pollingInterval.")
    rate_window: str = Field(default="1m", pattern=r"^[0-9]+[smh]$", description="rate() window for RequestsPerSecond.")
    average_window: str = Field(
        default="30s", pattern=r"^[0-9]+[smh]$",
        description="avg_over_time() window for the InFlightRequests and QueueDepth gauges. Prometheus scrapes each "
                    "pod at its own moment, so an instant sum over the pods counts a request that moved between them "
                    "twice or not at all; averaging smooths that, and bursts shorter than the window, at the cost of "
                    "following a load step over the window. \"0s\": the instant sum.",
    )
    custom_metrics: CustomMetricNames = Field(default_factory=CustomMetricNames)


# --- NetworkPolicy (spec.networkPolicy; docs/access.md) ----------------------------------------------------


class NetworkPeerConfig(_Section):
    """Pods by namespace name and/or labels, or addresses by CIDR (then nothing else)."""

    namespace: str | None = Field(default=None, description="Pods of this namespace (by name).")
    namespace_labels: dict[str, str] | None = Field(default=None, description="Pods of namespaces with these labels.")
    pod_labels: dict[str, str] | None = Field(default=None, description="Only pods with these labels.")
    cidr: str | None = Field(default=None, description="Addresses, e.g. 10.0.0.0/8 (an ipBlock).")

    @model_validator(mode="after")
    def _one_kind(self) -> NetworkPeerConfig:
        selectors = (self.namespace, self.namespace_labels, self.pod_labels)
        if self.cidr is not None and any(s is not None for s in selectors):
            raise ValueError("a network peer is either a cidr or namespace/pod selectors, not both")
        if self.cidr is None and all(s is None for s in selectors):
            raise ValueError("a network peer needs a cidr, a namespace, namespaceLabels or podLabels")
        if self.namespace is not None and self.namespace_labels is not None:
            raise ValueError("a network peer names its namespace or selects namespaces by labels, not both")
        return self


class NetworkPolicyConfig(_Section):
    """The NetworkPolicy of every model's pods. Off by default: its egress rules need the object store's (and,
    for KubernetesTokens auth, the API server's) addresses, which the operator cannot find out by itself, and a
    policy without them cuts models off their packages wherever the network plugin enforces it."""

    enabled: bool = Field(default=False, description="Render one for every model (spec.networkPolicy.enabled: "
                          "false opts a model out; spec.networkPolicy set turns it on for that model).")
    scrapers: list[NetworkPeerConfig] = Field(
        default_factory=lambda: [NetworkPeerConfig(namespace="monitoring")],
        description="Who may read the metrics port (8082): Prometheus.",
    )
    operator: list[NetworkPeerConfig] = Field(
        default_factory=list,
        description="The operator's own pods, which scrape the metrics port for canary analysis (the chart sets "
        "its namespace and pod labels).",
    )
    object_store: list[NetworkPeerConfig] = Field(
        default_factory=list, description="Where the object store is; empty: no egress to it.")
    object_store_port: int = Field(default=443, ge=1, le=65535)
    api_server: list[NetworkPeerConfig] = Field(
        default_factory=list,
        description="The API server's addresses (KubernetesTokens auth reviews tokens there); empty: no egress to it.",
    )
    api_server_port: int = Field(default=443, ge=1, le=65535, description="Its port as the pods reach it "
                                 "(the endpoint's port, e.g. 6443: policies see traffic after the Service's DNAT).")


class GatewayRef(_Section):
    """A Gateway API Gateway (or one of its listeners) the models' HTTPRoutes attach to."""

    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = Field(default=None, description="Unset: the model's namespace.")
    section_name: str | None = Field(default=None, description="The Gateway's listener; unset: all.")


class CanaryConfig(_Section):
    """How canaries split traffic (docs/canary.md)."""

    gateway: GatewayRef | None = Field(
        default=None,
        description="Set: every model gets an HTTPRoute on this Gateway (path /v2/models/<model>), all to its "
        "Service, and during a canary weighted between it and the candidate's Service (mode HTTPRoute: exact "
        "weights per request). Unset: a canary splits by replicas behind the model's Service (ReplicaRatio).",
    )


class OperatorConfig(BaseSettings):
    """The whole operator configuration."""

    model_config = SettingsConfigDict(
        env_prefix="MLMODEL_OPERATOR_",
        env_nested_delimiter="__",
        # No aliases at this level: pydantic-settings would drop the prefix for aliased fields.
        # load_config() maps the file's camelCase keys to these names.
        extra="forbid",
        frozen=True,
    )

    node_pools: list[NodePool] = Field(default_factory=list)
    runtime_images: dict[Format, str] = Field(default_factory=dict)
    default_resources: ResourceDefaults = Field(default_factory=ResourceDefaults)
    allowed_formats: list[Format] = Field(default_factory=lambda: list(_SAFE_FORMATS))
    allow_pickle: bool = False
    object_store: ObjectStoreDefaults = Field(default_factory=ObjectStoreDefaults)
    watch: Watch = Field(default_factory=Watch)
    resync: Resync = Field(default_factory=Resync)
    startup: Startup = Field(default_factory=Startup)
    runtime: Runtime = Field(default_factory=Runtime)
    failure_detection: FailureDetection = Field(default_factory=FailureDetection)
    leader_election: LeaderElection = Field(default_factory=LeaderElection)
    autoscaling: AutoscalingEngine = Field(default_factory=AutoscalingEngine)
    network_policy: NetworkPolicyConfig = Field(default_factory=NetworkPolicyConfig)
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    cluster_domain: str = "cluster.local"
    field_manager: str = "mlmodel-operator"
    metrics_port: int = Field(default=8090, ge=0, le=65535, description="0: no metrics listener.")
    health_port: int = Field(default=8091, ge=0, le=65535, description="0: no liveness endpoint.")
    max_workers: int = Field(default=16, ge=1, le=256, description="Threads for concurrent reconciles.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file (which arrives as init arguments).
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _consistent(self) -> OperatorConfig:
        names = [pool.name for pool in self.node_pools]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"nodePools: duplicate names {duplicates}")
        defaults = [pool.name for pool in self.node_pools if pool.default]
        if len(defaults) > 1:
            raise ValueError(f"nodePools: at most one default pool, found {defaults}")
        pickled = sorted(set(self.allowed_formats) & PICKLE_FORMATS)
        if pickled and not self.allow_pickle:
            raise ValueError(
                f"allowedFormats lists pickle-based {pickled}, which can run code when loaded: "
                "set allowPickle: true to allow them"
            )
        without_image = sorted(set(self.allowed_formats) - set(self.runtime_images))
        if without_image:
            raise ValueError(f"runtimeImages: no image for allowed formats {without_image}")
        return self

    @property
    def effective_formats(self) -> frozenset[str]:
        """Formats a model may use: allowed, with an image, and pickle-based only if allowed."""
        return frozenset(
            f for f in self.allowed_formats if self.allow_pickle or f not in PICKLE_FORMATS
        )

    def pool(self, name: str | None) -> NodePool | None:
        """The named pool, or the default one for None; None when there is no such pool."""
        for pool in self.node_pools:
            if (name is None and pool.default) or pool.name == name:
                return pool
        return None


def load_config(path: Path) -> OperatorConfig:
    """Read and validate the configuration file; a ConfigError says what is wrong."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, found {type(raw).__name__}")
    try:
        return OperatorConfig(**{to_snake(str(key)): value for key, value in raw.items()})
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_errors(exc)}") from None


def describe_errors(exc: ValidationError) -> str:
    """One line per problem, each naming the field as the file spells it (camelCase)."""
    lines = []
    for error in exc.errors():
        loc = [to_camel(part) if isinstance(part, str) else str(part) for part in error["loc"]]
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{'.'.join(loc)}: {message}" if loc else message)
    return "; ".join(lines)
