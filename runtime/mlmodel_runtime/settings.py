"""Typed runtime settings from the environment (prefix ``MLMODEL_``), see docs/contracts.md section 2.

``FetchSettings`` is what the init container's ``fetch`` needs; ``ServeSettings`` adds the server.
Command-line flags are passed as keyword arguments, which pydantic-settings ranks above the
environment, so flags override it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Device = Literal["auto", "cpu", "cuda"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class FetchSettings(BaseSettings):
    """Where the package comes from, where it goes and how it is checked."""

    model_config = SettingsConfigDict(env_prefix="MLMODEL_", extra="ignore", frozen=True)

    package: str = Field(min_length=1)
    """`s3://bucket/prefix/`, `s3://bucket/x.zip` (or `.tar.gz`), or a local directory."""

    model_dir: str = "/models"
    """Where the package is downloaded to (an emptyDir in the pod)."""

    package_digest: str = ""
    """Expected package digest, `sha256:<hex>` of deployment_manifest.json; empty: not checked."""

    format: str = ""
    """Overrides metadata.json's format when set."""

    allow_pickle: bool = False
    """Allow pickle-based formats (joblib), which can run code when loaded."""

    model_name: str = ""
    """The name served under /v2/models/{name} (required to serve; in every log line)."""

    model_revision: str = ""
    """The operator's revision number, in logs and metrics."""

    log_level: LogLevel = "info"
    """Level of the JSON logs."""

    termination_message_path: str = "/dev/termination-log"
    """Where a fatal failure's reason and message are written for the kubelet (the pod's
    `lastState.terminated.message`); empty: nowhere. Only written when the file can be opened."""

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("package_digest")
    @classmethod
    def _digest_form(cls, value: str) -> str:
        if value and not (
            value.startswith("sha256:") and len(value) == 71 and all(c in "0123456789abcdef" for c in value[7:])
        ):
            raise ValueError("must be empty or 'sha256:' followed by 64 lowercase hex digits")
        return value


class ServeSettings(FetchSettings):
    """Everything the model server needs."""

    model_name: str = Field(min_length=1)
    """The name served under /v2/models/{name}."""

    host: str = "0.0.0.0"  # the pod's listener; tests and benchmarks pass 127.0.0.1
    """Address of the V2 REST listener."""

    port: int = Field(default=8080, ge=0, le=65535)
    """Port of the V2 REST listener (container port `http`)."""

    grpc_port: int = Field(default=0, ge=0, le=65535)
    """Port of the Open Inference Protocol gRPC listener (container port `grpc`, 8081 in the pod); 0: none."""

    metrics_port: int = Field(default=8082, ge=0, le=65535)
    """Port of the Prometheus /metrics listener (container port `metrics`); 0 = on the main port."""

    max_batch_size: int = Field(default=0, ge=0)
    """Dynamic batching: most rows in one merged batch; 0 or 1 turns batching off."""

    max_batch_delay_ms: float = Field(default=0, ge=0)
    """Dynamic batching: longest wait, from the oldest queued request, for a batch to fill."""

    max_queue_size: int = Field(default=256, ge=1)
    """Requests waiting for the model before new ones get 503 with Retry-After."""

    max_request_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    """Larger request bodies (also once decompressed) get 413."""

    request_budget_bytes: int = Field(default=0, ge=0)
    """Bytes that the requests in flight may hold together (bodies, tensors, responses); beyond it
    requests wait, then get 503 with Retry-After. 0: a quarter of the container's memory limit
    (cgroup v2 or v1), or 512 MiB where there is none."""

    request_budget_wait_ms: float = Field(default=1000, ge=0)
    """How long a request may wait for room in the byte budget before it gets 503."""

    rate_limit_rps: float = Field(default=0, ge=0)
    """Inference requests a second per client (the token's subject with auth, else the source address),
    as a token bucket shared by REST and gRPC; beyond it 429 with Retry-After (gRPC: RESOURCE_EXHAUSTED).
    0: no limit."""

    rate_limit_burst: int = Field(default=0, ge=0)
    """Requests a client may send at once above its rate (the bucket's size); 0: the rate, at least 1."""

    rate_limit_max_clients: int = Field(default=10000, ge=1)
    """Clients whose buckets are kept (least recently seen forgotten first): bounds the limiter's memory."""

    auth: Literal["none", "kubernetes", "apikeys"] = "none"
    """Bearer tokens on inference and metadata requests (health stays open): `kubernetes` (TokenReview, then a
    SubjectAccessReview on this MLModel), `apikeys` (hashed keys from a mounted Secret) or `none`."""

    auth_namespace: str = ""
    """auth=kubernetes: the MLModel's namespace, for the SubjectAccessReview."""

    auth_verb: str = Field(default="get", min_length=1)
    """auth=kubernetes: the verb on the MLModel a caller needs."""

    auth_cache_ttl_s: float = Field(default=60.0, gt=0, le=600)
    """auth=kubernetes: how long a token's verdict (either way) is kept."""

    auth_cache_size: int = Field(default=10000, ge=1)
    """auth=kubernetes: verdicts kept at most (least recently used forgotten first)."""

    auth_kubeconfig: str = ""
    """auth=kubernetes: a kubeconfig for the reviews; empty: the pod's ServiceAccount (in-cluster)."""

    auth_api_keys_dir: str = "/etc/mlmodel/api-keys"
    """auth=apikeys: the mounted Secret's folder, one file per key holding its SHA-256 in hex (read again
    every second, so rotation needs no restart)."""

    intra_op_threads: int = Field(default=0, ge=0)
    """Threads inside one operator (0 = the framework's default)."""

    inter_op_threads: int = Field(default=0, ge=0)
    """Threads running independent operators in parallel (0 = the framework's default)."""

    device: Device = "auto"
    """`auto` (the GPU when present), `cpu` or `cuda`."""

    graceful_shutdown_s: float = Field(default=25.0, gt=0)
    """How long in-flight requests may take to finish after SIGTERM (inside the pod's 30 s grace)."""

    drift: bool = True
    """Score drift against the package's baseline.json, when it has one (docs/quality.md)."""

    drift_window_rows: int = Field(default=2000, ge=10)
    """Drift: the sliding window of sampled rows the scores are computed from."""

    drift_sample_rate: float = Field(default=1.0, gt=0, le=1)
    """Drift: the share of requests whose rows enter the window."""

    drift_interval_s: float = Field(default=10.0, gt=0)
    """Drift: how often the scores are recomputed (off the request path)."""

    shadow_url: str = ""
    """Shadow traffic: base URL of a candidate revision to copy a share of requests to, after answering
    them; its answers are compared with this revision's and never returned (server/shadow.py). Empty: off."""

    shadow_file: str = ""
    """Shadow traffic: a JSON file of shadow settings followed while the runtime runs (server/shadow_file.py; the
    operator mounts the canary's ConfigMap there); its settings replace the MLMODEL_SHADOW_* ones. Empty: none."""

    shadow_revision: str = ""
    """Shadow traffic: the candidate's revision, in the metrics."""

    shadow_percent: float = Field(default=0.0, ge=0, le=100)
    """Shadow traffic: the share of requests copied, in percent."""

    shadow_atol: float = Field(default=1e-5, ge=0)
    """Shadow traffic: absolute tolerance when comparing outputs."""

    shadow_rtol: float = Field(default=1e-3, ge=0)
    """Shadow traffic: relative tolerance when comparing outputs."""

    shadow_output_tolerances: dict[str, tuple[float, float]] = Field(default_factory=dict)
    """Shadow traffic: per output, [absolute, relative] tolerances (JSON) instead of the two above."""

    shadow_max_inflight: int = Field(default=16, ge=1)
    """Shadow traffic: copies in flight at most; beyond it copies are dropped (and counted)."""

    shadow_timeout_s: float = Field(default=5.0, gt=0)
    """Shadow traffic: how long a copy may take before it counts as an error."""

    @property
    def batching(self) -> bool:
        return self.max_batch_size > 1
