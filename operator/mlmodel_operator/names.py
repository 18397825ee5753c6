"""Names, label keys and annotation keys shared by rendering, planning and status.

The selector labels are immutable on a Deployment: never change what `selector_labels` returns.
"""

from __future__ import annotations

APP_NAME = "mlmodel-runtime"
MANAGED_BY = "mlmodel-operator"
PART_OF = "mlmodel"
COMPONENT = "model-server"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"

# On the pod template (so on each ReplicaSet and pod): the operator's revision number.
REVISION_LABEL = "serving.mlmodel.io/revision"
# On the Deployment: the revision its pod template carries (an annotation, for `kubectl get -o yaml` readers).
REVISION_ANNOTATION = "serving.mlmodel.io/revision"
# On the pod template: hash of the template without the revision, to tell whether the desired
# template is the one already rolled out (then its revision number is kept).
FINGERPRINT_ANNOTATION = "serving.mlmodel.io/template-fingerprint"
# On the pod template: the package digest the pods verify.
DIGEST_ANNOTATION = "serving.mlmodel.io/package-digest"
# On the Deployment and Service: hash of what the operator last applied, so that a pass with
# nothing to change sends nothing.
APPLIED_HASH_ANNOTATION = "serving.mlmodel.io/applied-hash"

# On the MLModel, set by a user: a new value retries a failed revision once (the last value acted on is
# kept in status.lastRetry).
RETRY_ANNOTATION = "serving.mlmodel.io/retry"
# On the MLModel, set by a user (`mlmodel promote` / `mlmodel abort`): a new value ends the canary's current step
# (promote) or aborts the canary (abort), once each (the last values acted on are in status.canary).
PROMOTE_ANNOTATION = "serving.mlmodel.io/promote"
ABORT_ANNOTATION = "serving.mlmodel.io/abort"
# On the candidate's Deployment and pods during a canary (part of that Deployment's selector).
TRACK_LABEL = "serving.mlmodel.io/track"
CANARY_TRACK = "canary"
CANARY_OF_LABEL = "serving.mlmodel.io/canary-of"
# Every runtime pod mounts the model's shadow ConfigMap (optional) here and follows the file in it: during a
# canary with shadow traffic the operator writes it, and the stable pods copy requests to the candidate.
SHADOW_DIR = "/etc/mlmodel/shadow"
SHADOW_KEY = "shadow.json"

CONTAINER_NAME = "runtime"
HTTP_PORT = 8080
GRPC_PORT = 8081
METRICS_PORT = 8082
MODEL_DIR = "/models"


def selector_labels(model: str) -> dict[str, str]:
    """Labels that select a model's runtime pods (Deployment selector, Service selector)."""
    return {LABEL_NAME: APP_NAME, LABEL_INSTANCE: model}


def canary_name(model: str) -> str:
    """The candidate revision's Deployment during a canary."""
    return f"{model}-canary"


def canary_selector_labels(model: str) -> dict[str, str]:
    """The candidate's Deployment selector (and its Service's, for shadow copies). In steps with a weight its
    pods also carry the model's own selector labels, so the model's Service sends them their share of the
    traffic; in shadow-only steps (weight 0) they do not."""
    return {TRACK_LABEL: CANARY_TRACK, CANARY_OF_LABEL: model}


def canary_selector_string(model: str) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(canary_selector_labels(model).items()))


def shadow_config_name(model: str) -> str:
    """The ConfigMap of a canary's shadow settings, mounted by every runtime pod of the model."""
    return f"{model}-shadow"


def selector_string(model: str) -> str:
    """The selector as a label-selector string (status.selector, for the scale subresource)."""
    return ",".join(f"{key}={value}" for key, value in sorted(selector_labels(model).items()))


def object_labels(model: str) -> dict[str, str]:
    """The app.kubernetes.io/* labels of everything the operator creates for a model."""
    return {
        **selector_labels(model),
        LABEL_COMPONENT: COMPONENT,
        LABEL_PART_OF: PART_OF,
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def model_url(model: str, namespace: str, cluster_domain: str) -> str:
    """In-cluster URL of a model's V2 endpoint, through its Service."""
    return f"http://{model}.{namespace}.svc.{cluster_domain}:{HTTP_PORT}/v2/models/{model}"


# The runtime's exit codes (docs/contracts.md section 1) and what they mean; 16 is temporary.
RUNTIME_EXIT_REASONS: dict[int, str] = {
    10: "PackageNotFound",
    11: "AccessDenied",
    12: "ManifestInvalid",
    13: "DigestMismatch",
    14: "UnsafeArchive",
    15: "FormatNotAllowed",
    16: "StoreUnavailable",
    17: "ExamplesMismatch",
}
TEMPORARY_EXIT_CODES = frozenset({16})
# Exit codes whose reason is the failed revision's own reason (not CrashLoop): the model loaded and answered
# its package's examples wrongly.
OWN_REASON_EXIT_CODES = frozenset({17})
