"""Typed objects for the operator's unit tests: the local cluster's config, models, packages."""

from __future__ import annotations

from typing import Any

from mlmodel_operator.config import OperatorConfig
from mlmodel_operator.render import RenderInput
from mlmodel_operator.spec import HistoryEntry, MLModel, Outcome, PackageStatus, RevisionRecord, RevisionSettings

from hack.localcluster import local_operator_config

IMAGE = "ghcr.io/mlmodel-operator/runtime:0.1.0"
DIGEST = "sha256:" + "ab" * 32

# What `make cluster-up` writes to .local/operator/config.yaml (tests set their own object store).
LOCAL_CONFIG: dict[str, Any] = local_operator_config("http://127.0.0.1:8333", "us-east-1")


def config(**overrides: Any) -> OperatorConfig:
    from pydantic.alias_generators import to_snake

    raw = {**LOCAL_CONFIG, **overrides}
    return OperatorConfig(**{to_snake(k): v for k, v in raw.items()})


def model(
    name: str = "fraud-detector",
    namespace: str = "risk",
    generation: int = 1,
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> MLModel:
    body = {
        "apiVersion": "serving.mlmodel.io/v1alpha1",
        "kind": "MLModel",
        "metadata": {"name": name, "namespace": namespace, "uid": "0a1b2c3d-uid", "generation": generation},
        "spec": {"source": {"uri": "s3://models/fraud-detector/7/", "credentialsSecret": "models-s3"}, **spec},
        "status": status or {},
    }
    return MLModel.model_validate(body)


def package(size: int = 2 * 1024 * 1024, fmt: str = "onnx", digest: str = DIGEST) -> PackageStatus:
    return PackageStatus(uri="s3://models/fraud-detector/7/", digest=digest, size=size, format=fmt)


def render_input(m: MLModel | None = None, revision: int = 1, size: int = 2 * 1024 * 1024, **cfg: Any) -> RenderInput:
    m = m or model(resources={"gpu": 1})
    c = config(**cfg)
    pool = c.pool(m.spec.node_pool)
    assert pool is not None
    return RenderInput(model=m, config=c, package=package(size=size), pool=pool, revision=revision)


T0 = "2026-11-22T10:00:00Z"


def record(revision: int, fingerprint: str | None = None, uri: str | None = None) -> RevisionRecord:
    """A revision of the default model: its own package prefix, digest and fingerprint."""
    source = {"uri": uri or f"s3://models/fraud-detector/{revision}/", "credentialsSecret": "models-s3"}
    return RevisionRecord(
        revision=revision,
        uri=source["uri"],
        digest="sha256:" + f"{revision:02x}" * 32,
        format="onnx",
        size=2 * 1024 * 1024,
        created_at=T0,
        fingerprint=fingerprint or f"fp-{revision}",
        settings=RevisionSettings.model_validate({"source": source}),
    )


def history_entry(
    revision: int, outcome: Outcome, reason: str | None = None, message: str | None = None,
    fingerprint: str | None = None,
) -> HistoryEntry:
    return HistoryEntry(**dict(record(revision, fingerprint)), outcome=outcome, reason=reason, message=message)
