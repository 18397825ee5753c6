"""The only code that talks to the Kubernetes API: reads as plain dicts, server-side apply, status
merge patches and events. Every write is counted in the operator's metrics, and every write first asks the
fence (the Lease, with leader election) whether this replica may still write."""

from __future__ import annotations

import base64
import json
import logging
import socket
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from mlmodel_operator.metrics import OperatorMetrics
from mlmodel_operator.spec import GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)

APPLY_PATCH = "application/apply-patch+yaml"
# kind -> (group, version, plural) of the objects that carry out spec.autoscaling.
AUTOSCALERS = {
    "ScaledObject": ("keda.sh", "v1alpha1", "scaledobjects"),
    "HorizontalPodAutoscaler": ("autoscaling", "v2", "horizontalpodautoscalers"),
}
HTTP_ROUTE = ("gateway.networking.k8s.io", "v1", "httproutes")  # config.canary.gateway (render.canary)
MERGE_PATCH = "application/merge-patch+json"
# kind -> plural of the objects that carry out spec.auth KubernetesTokens and spec.networkPolicy
# (mlmodel_operator.access); a ClusterRoleBinding is cluster-scoped.
ACCESS_KINDS = {"ServiceAccount": "serviceaccounts", "ClusterRoleBinding": "clusterrolebindings",
                "NetworkPolicy": "networkpolicies"}


def connect(kubeconfig: str | None = None, pool_size: int | None = None) -> client.ApiClient:
    """An API client from KUBECONFIG / ~/.kube/config, or the in-cluster service account. `pool_size`: HTTP
    connections kept per host; at least the number of threads that call the API at once (the client's default,
    5 per CPU, is fewer than the reconcile workers on a small node: "connection pool is full" under load)."""
    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    if pool_size is not None:
        configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)


def _data(response: Any) -> dict[str, Any]:
    """The JSON body of a `_preload_content=False` response."""
    result: dict[str, Any] = json.loads(response.data)
    return result


class StaleModel(Exception):
    """A status write refused because the MLModel changed after the pass read it (HTTP 409)."""


def _missing(exc: ApiException) -> bool:
    return bool(exc.status == 404)


class KubeApi:
    """Thin, typed-at-the-edges access to the objects the operator reads and writes."""

    def __init__(
        self, api_client: client.ApiClient, field_manager: str, metrics: OperatorMetrics, *,
        fence: Callable[[], None] | None = None, instance: str | None = None,
    ) -> None:
        """`fence`: called before every write; it raises, or ends the process, when this replica may no
        longer write (adapters.lease.LeaseElector.holds). `instance`: this replica, in the events it posts."""
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.rbac = client.RbacAuthorizationV1Api(api_client)
        self.networking = client.NetworkingV1Api(api_client)
        self.field_manager = field_manager
        self.metrics = metrics
        self.fence = fence or (lambda: None)
        self.instance = instance or socket.gethostname()

    # -- reads -----------------------------------------------------------------------------

    def get_model(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _data(self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _preload_content=False))
        except ApiException as exc:
            if _missing(exc):
                return None
            raise

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _data(self.apps.read_namespaced_deployment(name, namespace, _preload_content=False))
        except ApiException as exc:
            if _missing(exc):
                return None
            raise

    def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _data(self.core.read_namespaced_config_map(name, namespace, _preload_content=False))
        except ApiException as exc:
            if _missing(exc):
                return None
            raise

    def get_http_route(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _data(self.custom.get_namespaced_custom_object(*HTTP_ROUTE[:2], namespace, HTTP_ROUTE[2], name,
                                                                  _preload_content=False))
        except ApiException as exc:
            if _missing(exc):
                return None
            raise

    def delete_canary_object(self, kind: str, namespace: str, name: str) -> bool:
        """Delete a canary's Deployment (its ReplicaSets and pods go with it), Service or shadow ConfigMap once the
        canary is over; False when there was none."""
        self.fence()
        try:
            if kind == "Deployment":
                self.apps.delete_namespaced_deployment(name, namespace, propagation_policy="Background",
                                                       _preload_content=False)
            elif kind == "Service":
                self.core.delete_namespaced_service(name, namespace, _preload_content=False)
            elif kind == "ConfigMap":
                self.core.delete_namespaced_config_map(name, namespace, _preload_content=False)
            elif kind == "HTTPRoute":
                self.custom.delete_namespaced_custom_object(*HTTP_ROUTE[:2], namespace, HTTP_ROUTE[2], name,
                                                            _preload_content=False)
            else:
                raise ValueError(f"cannot delete a {kind}")
        except ApiException as exc:
            if _missing(exc):
                return False
            raise
        self.metrics.writes.labels(resource=kind.lower() + "s", verb="delete").inc()
        return True

    def get_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _data(self.core.read_namespaced_service(name, namespace, _preload_content=False))
        except ApiException as exc:
            if _missing(exc):
                return None
            raise

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        body = _data(self.core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False))
        return list(body.get("items", []))

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Secret's data, decoded; None when it does not exist. Never log what this returns."""
        try:
            body = _data(self.core.read_namespaced_secret(name, namespace, _preload_content=False))
        except ApiException as exc:
            if _missing(exc):
                return None
            raise
        return {key: base64.b64decode(value).decode() for key, value in (body.get("data") or {}).items()}

    # -- writes ----------------------------------------------------------------------------

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply (create or update) of an object the operator renders; returns the live object."""
        meta = obj["metadata"]
        kind = obj["kind"]
        kwargs: dict[str, Any] = {
            "field_manager": self.field_manager,
            "force": True,
            "_content_type": APPLY_PATCH,
            "_preload_content": False,
        }
        response: Any
        self.fence()
        if kind == "Deployment":
            response = self.apps.patch_namespaced_deployment(meta["name"], meta["namespace"], dict(obj), **kwargs)
        elif kind == "Service":
            response = self.core.patch_namespaced_service(meta["name"], meta["namespace"], dict(obj), **kwargs)
        elif kind == "ConfigMap":
            response = self.core.patch_namespaced_config_map(meta["name"], meta["namespace"], dict(obj), **kwargs)
        elif kind == "ServiceAccount":
            response = self.core.patch_namespaced_service_account(meta["name"], meta["namespace"], dict(obj), **kwargs)
        elif kind == "ClusterRoleBinding":
            response = self.rbac.patch_cluster_role_binding(meta["name"], dict(obj), **kwargs)
        elif kind == "NetworkPolicy":
            response = self.networking.patch_namespaced_network_policy(meta["name"], meta["namespace"], dict(obj),
                                                                       **kwargs)
        elif kind in AUTOSCALERS or kind == "HTTPRoute":
            group, version, plural = AUTOSCALERS.get(kind, HTTP_ROUTE)
            response = self.custom.patch_namespaced_custom_object(
                group, version, meta["namespace"], plural, meta["name"], dict(obj), **kwargs)
        else:
            raise ValueError(f"cannot apply a {kind}")
        self.metrics.writes.labels(resource=ACCESS_KINDS.get(kind, kind.lower() + "s"), verb="apply").inc()
        return _data(response)

    # -- spec.auth's token reviewer and spec.networkPolicy (mlmodel_operator.access) ------------------------------

    def get_access_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A ServiceAccount, NetworkPolicy or (namespace ignored) ClusterRoleBinding; None when there is none."""
        response: Any
        try:
            if kind == "ServiceAccount":
                response = self.core.read_namespaced_service_account(name, namespace, _preload_content=False)
            elif kind == "NetworkPolicy":
                response = self.networking.read_namespaced_network_policy(name, namespace, _preload_content=False)
            elif kind == "ClusterRoleBinding":
                response = self.rbac.read_cluster_role_binding(name, _preload_content=False)
            else:
                raise ValueError(f"cannot read a {kind}")
        except ApiException as exc:
            if _missing(exc):
                return None
            raise
        return _data(response)

    def list_cluster_role_bindings(self, selector: str) -> list[dict[str, Any]]:
        body = _data(self.rbac.list_cluster_role_binding(label_selector=selector, _preload_content=False))
        return list(body.get("items", []))

    def delete_access_object(self, kind: str, namespace: str, name: str) -> bool:
        """Delete a ServiceAccount, NetworkPolicy or (namespace ignored) ClusterRoleBinding; False when there was
        none."""
        self.fence()
        try:
            if kind == "ServiceAccount":
                self.core.delete_namespaced_service_account(name, namespace, _preload_content=False)
            elif kind == "NetworkPolicy":
                self.networking.delete_namespaced_network_policy(name, namespace, _preload_content=False)
            elif kind == "ClusterRoleBinding":
                self.rbac.delete_cluster_role_binding(name, _preload_content=False)
            else:
                raise ValueError(f"cannot delete a {kind}")
        except ApiException as exc:
            if _missing(exc):
                return False
            raise
        self.metrics.writes.labels(resource=ACCESS_KINDS[kind], verb="delete").inc()
        return True

    # -- the autoscaler of spec.autoscaling (render.autoscaling): a KEDA ScaledObject or an HPA ----------------

    def get_autoscaler(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        group, version, plural = AUTOSCALERS[kind]
        try:
            return _data(self.custom.get_namespaced_custom_object(
                group, version, namespace, plural, name, _preload_content=False))
        except ApiException as exc:
            if _missing(exc):
                return None
            raise

    def get_hpa(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The HPA (KEDA's too: it is named after the model), for its desired replicas and conditions."""
        return self.get_autoscaler("HorizontalPodAutoscaler", namespace, name)

    def delete_autoscaler(self, kind: str, namespace: str, name: str) -> bool:
        """Delete the autoscaler of a model whose spec.autoscaling went; False when there was none (or its CRD
        is not installed: nothing of that kind can exist)."""
        group, version, plural = AUTOSCALERS[kind]
        self.fence()
        try:
            self.custom.delete_namespaced_custom_object(group, version, namespace, plural, name,
                                                        _preload_content=False)
        except ApiException as exc:
            if _missing(exc):
                return False
            raise
        self.metrics.writes.labels(resource=plural, verb="delete").inc()
        return True

    def scale_model(self, namespace: str, name: str, replicas: int) -> None:
        """Set spec.replicas through the MLModel's scale subresource, as an HPA does."""
        self.fence()
        self.custom.patch_namespaced_custom_object_scale(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": {"replicas": replicas}},
            _content_type=MERGE_PATCH, _preload_content=False)
        self.metrics.writes.labels(resource="mlmodels/scale", verb="patch").inc()

    def patch_model_status(
        self, namespace: str, name: str, status: Mapping[str, Any], resource_version: str | None = None
    ) -> str:
        """Merge-patch the status subresource (nulls remove fields); returns the MLModel's new resourceVersion.
        With `resource_version` the patch applies only to that version of the MLModel: a status decided from
        an older read (another replica wrote since, or the spec changed) raises StaleModel instead."""
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        self.fence()
        try:
            response = self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, body, _content_type=MERGE_PATCH, _preload_content=False,
            )
        except ApiException as exc:
            if exc.status == 409:
                raise StaleModel(f"{namespace}/{name} changed since it was read; reading it again") from None
            raise
        self.metrics.writes.labels(resource="mlmodels/status", verb="patch").inc()
        return str(_data(response)["metadata"]["resourceVersion"])

    def post_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str, now: datetime,
        name: str | None = None,
    ) -> None:
        """A core/v1 Event on the MLModel (what `kubectl describe` shows); best effort. With `name` it is
        idempotent: an event of that name posted before (409 AlreadyExists) counts as posted."""
        meta = involved["metadata"]
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        naming = {"name": name} if name else {"generateName": f"{meta['name']}."}
        event: Any = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {**naming, "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self.field_manager},
            "reportingComponent": self.field_manager,
            "reportingInstance": self.instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        self.fence()
        try:
            self.core.create_namespaced_event(meta["namespace"], event, _preload_content=False)
            self.metrics.writes.labels(resource="events", verb="create").inc()
        except ApiException as exc:
            if name and exc.status == 409:
                return  # posted before (a pass that stopped before its status write)
            log.warning("could not post event %s on %s/%s: %s", reason, meta["namespace"], meta["name"], exc.reason)
