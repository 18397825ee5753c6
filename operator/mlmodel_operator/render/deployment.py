"""The runtime Deployment: a pure function of RenderInput."""

from __future__ import annotations

import math
from typing import Any

from mlmodel_operator import names
from mlmodel_operator.render.auth import auth_env, auth_pod_spec, auth_volume_mounts, auth_volumes
from mlmodel_operator.render.hashing import stable_hash
from mlmodel_operator.render.inputs import RenderInput
from mlmodel_operator.render.owner import model_owner_reference
from mlmodel_operator.render.probes import probes
from mlmodel_operator.render.resources import container_resources

MIB = 1024 * 1024
# Room for an archive next to its extracted files, plus slack for small packages.
MODEL_DIR_HEADROOM = 256 * MIB


def owner_reference(inp: RenderInput) -> dict[str, Any]:
    """Makes the object garbage-collected with its MLModel."""
    return model_owner_reference(inp.model)


def model_dir_size_limit(package_size: int) -> str:
    """emptyDir size for the package: twice its size (an archive and its contents) plus headroom."""
    return f"{math.ceil((2 * package_size + MODEL_DIR_HEADROOM) / MIB)}Mi"


def _env(inp: RenderInput, revision: int | None) -> list[dict[str, Any]]:
    spec = inp.model.spec
    config = inp.config
    env: list[dict[str, Any]] = [
        {"name": "MLMODEL_PACKAGE", "value": spec.source.uri},
        {"name": "MLMODEL_MODEL_NAME", "value": inp.model.metadata.name},
        {"name": "MLMODEL_MODEL_REVISION", "value": "" if revision is None else str(revision)},
        {"name": "MLMODEL_PACKAGE_DIGEST", "value": inp.package.digest},
        {"name": "MLMODEL_FORMAT", "value": inp.package.format},
        {"name": "MLMODEL_MODEL_DIR", "value": names.MODEL_DIR},
        {"name": "MLMODEL_PORT", "value": str(names.HTTP_PORT)},
        {"name": "MLMODEL_METRICS_PORT", "value": str(names.METRICS_PORT)},
        {"name": "MLMODEL_GRPC_PORT", "value": str(names.GRPC_PORT)},
        {"name": "MLMODEL_SHADOW_FILE", "value": f"{names.SHADOW_DIR}/{names.SHADOW_KEY}"},
        {"name": "MLMODEL_MAX_BATCH_SIZE", "value": str(spec.batching.max_batch_size)},
        {"name": "MLMODEL_MAX_BATCH_DELAY_MS", "value": str(spec.batching.max_delay_ms)},
        {"name": "MLMODEL_MAX_QUEUE_SIZE", "value": str(spec.batching.max_queue_size)},
        {"name": "MLMODEL_DEVICE", "value": "cuda" if spec.resources.gpu > 0 else "cpu"},
        {"name": "MLMODEL_ALLOW_PICKLE", "value": "true" if config.allow_pickle else "false"},
    ]
    if spec.rate_limit is not None:
        env.append({"name": "MLMODEL_RATE_LIMIT_RPS", "value": f"{spec.rate_limit.requests_per_second:g}"})
        env.append({"name": "MLMODEL_RATE_LIMIT_BURST", "value": str(spec.rate_limit.burst)})
    env.extend(auth_env(inp))
    endpoint = spec.source.endpoint or config.object_store.endpoint
    if endpoint:
        env.append({"name": "AWS_ENDPOINT_URL", "value": endpoint})
    env.append({"name": "AWS_REGION", "value": spec.source.region or config.object_store.region})
    secret = spec.source.credentials_secret
    if secret:
        keys = config.object_store.secret_keys
        for var, key in (("AWS_ACCESS_KEY_ID", keys.access_key_id), ("AWS_SECRET_ACCESS_KEY", keys.secret_access_key)):
            env.append({"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    return env


def _container(inp: RenderInput, revision: int | None) -> dict[str, Any]:
    drain = inp.config.runtime.drain_delay_seconds
    # Endpoint removal reaches kube-proxy a moment after the pod starts terminating: until then new connections
    # still arrive, so the runtime gets its SIGTERM (and closes its listener) only after this sleep.
    lifecycle = {"lifecycle": {"preStop": {"sleep": {"seconds": drain}}}} if drain else {}
    return {
        "name": names.CONTAINER_NAME,
        "image": inp.runtime_image(),
        "imagePullPolicy": inp.config.runtime.image_pull_policy,
        "args": ["serve"],
        "env": _env(inp, revision),
        "ports": [
            {"name": "http", "containerPort": names.HTTP_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": names.METRICS_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": names.GRPC_PORT, "protocol": "TCP"},
        ],
        "resources": container_resources(inp),
        **probes(inp.model.metadata.name, inp.package.size, inp.config.startup, inp.model.spec.protocol),
        **lifecycle,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "model", "mountPath": names.MODEL_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "shadow", "mountPath": names.SHADOW_DIR, "readOnly": True},
            *auth_volume_mounts(inp),
        ],
    }


def _pod_template(inp: RenderInput, revision: int | None) -> dict[str, Any]:
    """The pod template; without the revision number (None) for the fingerprint."""
    model = inp.model
    name = model.metadata.name
    runtime = inp.config.runtime
    pod_meta = model.spec.pod_metadata
    labels = {**(pod_meta.labels or {}), **names.object_labels(name)}
    annotations = {
        **(pod_meta.annotations or {}),
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(names.METRICS_PORT),
        "prometheus.io/path": "/metrics",
        names.DIGEST_ANNOTATION: inp.package.digest,
    }
    if revision is not None:
        labels[names.REVISION_LABEL] = str(revision)
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": runtime.termination_grace_period_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": runtime.run_as_user,
            "runAsGroup": runtime.run_as_user,
            "fsGroup": runtime.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(inp, revision)],
        "volumes": [
            {"name": "model", "emptyDir": {"sizeLimit": model_dir_size_limit(inp.package.size)}},
            {"name": "tmp", "emptyDir": {"sizeLimit": runtime.scratch_size_limit}},
            # optional: it exists only while a canary with shadow traffic runs (names.SHADOW_DIR)
            {"name": "shadow", "configMap": {"name": names.shadow_config_name(name), "optional": True}},
            *auth_volumes(inp),
        ],
    }
    if runtime.service_account_name:
        pod_spec["serviceAccountName"] = runtime.service_account_name
    pod_spec.update(auth_pod_spec(inp))  # KubernetesTokens: the model's own reviewer, its token mounted
    if inp.pool.node_selector:
        pod_spec["nodeSelector"] = dict(sorted(inp.pool.node_selector.items()))
    if inp.pool.tolerations:
        pod_spec["tolerations"] = [toleration.to_k8s() for toleration in inp.pool.tolerations]
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec}


def template_fingerprint(inp: RenderInput) -> str:
    """Hash of the pod template without the revision number: equal fingerprints, same revision."""
    return stable_hash(_pod_template(inp, None))


def _strategy(inp: RenderInput) -> dict[str, Any]:
    if inp.model.spec.rollout.strategy == "Replace":
        # Old pods first: a GPU pool without room for an extra replica can still roll out.
        return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def render_deployment(
    inp: RenderInput, replicas: int | None = None, *, canary: bool = False, serving: bool = True
) -> dict[str, Any]:
    """The runtime Deployment, with the applied-hash annotation over everything else in it.

    `replicas`: instead of the spec's (a canary's split); `canary`: the candidate's Deployment of a canary
    (names.canary_name), selected by names.canary_selector_labels; `serving`: its pods carry the model's
    instance label too, so the model's Service sends them traffic (not in a shadow-only step)."""
    model = inp.model
    name = model.metadata.name
    template = _pod_template(inp, inp.revision)
    template["metadata"]["annotations"][names.FINGERPRINT_ANNOTATION] = template_fingerprint(inp)
    labels = names.object_labels(name)
    selector = names.selector_labels(name)
    if canary:
        selector = names.canary_selector_labels(name)
        template["metadata"]["labels"].update(selector)
        if not serving:
            del template["metadata"]["labels"][names.LABEL_INSTANCE]
        labels = {**labels, **selector}
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": names.canary_name(name) if canary else name,
            "namespace": model.metadata.namespace,
            "labels": labels,
            "annotations": {names.REVISION_ANNOTATION: str(inp.revision)},
            "ownerReferences": [owner_reference(inp)],
        },
        "spec": {
            "replicas": model.spec.desired_replicas() if replicas is None else replicas,
            "revisionHistoryLimit": model.spec.revision_history_limit,
            "progressDeadlineSeconds": model.spec.rollout.progress_deadline_seconds,
            "selector": {"matchLabels": selector},
            "strategy": _strategy(inp),
            "template": template,
        },
    }
    deployment["metadata"]["annotations"][names.APPLIED_HASH_ANNOTATION] = stable_hash(deployment)
    return deployment
