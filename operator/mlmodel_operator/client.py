"""The client side of the MLModel API, for the `mlmodel` CLI's cluster commands (`mlmodel history`, `mlmodel
rollback`, `mlmodel promote`, `mlmodel abort`): read an MLModel, ask for a rollback by patching
`spec.rollbackTo` (the operator never writes spec; this is the user's own change), and set one of the
annotations the operator acts on (a merge patch of that one annotation: nothing in spec, so a GitOps tool that
owns spec has nothing to revert). The group, version and plural are the typed spec's."""

from __future__ import annotations

import json
from typing import Any

from mlmodel_operator.spec import GROUP, PLURAL, VERSION


class ModelApiError(Exception):
    """The MLModel is missing, or the API refused; `reason` is CamelCase."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Models:
    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        from kubernetes import client, config

        self.default_namespace = "default"
        try:
            config.load_kube_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
            contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
            chosen = next((c for c in contexts if c.get("name") == context), active) if context else active
            self.default_namespace = (chosen or {}).get("context", {}).get("namespace") or "default"
        except config.ConfigException:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        self.api = client.CustomObjectsApi()

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            response = fn(*args, _preload_content=False, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                raise ModelApiError("NotFound", f"{what}: not found") from None
            if exc.status in (401, 403):
                raise ModelApiError("Forbidden", f"{what}: the cluster refused ({exc.status} {exc.reason})") from None
            try:
                detail = json.loads(exc.body or "{}").get("message") or exc.reason
            except ValueError:
                detail = exc.reason
            raise ModelApiError("ApiError", f"{what}: {detail}") from None
        except OSError as exc:
            raise ModelApiError("Unreachable", f"{what}: the cluster is unreachable ({exc})") from None
        return dict(json.loads(response.data))

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        return self._call(f"MLModel {namespace}/{name}", self.api.get_namespaced_custom_object,
                          GROUP, VERSION, namespace, PLURAL, name)

    def set_rollback(self, namespace: str, name: str, revision: int | None) -> dict[str, Any]:
        """Merge-patch only spec.rollbackTo ({revision: N}, or null to follow spec.source again)."""
        body = {"spec": {"rollbackTo": {"revision": revision} if revision is not None else None}}
        return self._call(f"MLModel {namespace}/{name}", self.api.patch_namespaced_custom_object,
                          GROUP, VERSION, namespace, PLURAL, name, body)

    def set_annotation(self, namespace: str, name: str, key: str, value: str) -> dict[str, Any]:
        """Merge-patch only metadata.annotations[key] (other annotations, spec and status stay as they are)."""
        body = {"metadata": {"annotations": {key: value}}}
        return self._call(f"MLModel {namespace}/{name}", self.api.patch_namespaced_custom_object,
                          GROUP, VERSION, namespace, PLURAL, name, body)
