"""kopf handlers: a few lines each, all delegating to the same Reconciler.reconcile.

create / update / resume and the resync timer run the pass for the MLModel; a change to a runtime
Deployment (rollout progress, pods becoming available) runs it for the owning MLModel. While a revision
rolls out (status.rollout is set) a faster timer looks at its pods, so that a crash loop or a pod that
never becomes ready is seen within seconds (pod changes alone do not change the Deployment).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from mlmodel_operator import names, plan
from mlmodel_operator.adapters import StaleModel
from mlmodel_operator.config import OperatorConfig
from mlmodel_operator.reconcile import Reconciler, RetryLater
from mlmodel_operator.spec import GROUP, KIND, PLURAL, VERSION

log = logging.getLogger(__name__)


def _owner(body: Mapping[str, Any]) -> str | None:
    for ref in body.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("apiVersion", "").startswith(f"{GROUP}/") and ref.get("controller"):
            return str(ref["name"])
    return None


def register(
    registry: kopf.OperatorRegistry, reconciler: Reconciler, config: OperatorConfig,
    scope: plan.WatchScope | None = None, fence: Callable[[], None] | None = None,
) -> None:
    """Register every handler of the operator on `registry`, for the models in `scope`'s namespaces.
    `fence` runs first in every handler (the Lease check of adapters.kube's writes): a handler that returns
    is followed by kopf's own writes (its annotations), which must not happen after the Lease is lost either."""

    serves = (scope or plan.WatchScope()).serves
    leads = fence or (lambda: None)

    def served(namespace: str | None, **_: Any) -> bool:
        return serves(namespace)

    def rolling_out(namespace: str | None, status: Mapping[str, Any], **_: Any) -> bool:
        return served(namespace) and bool(status.get("rollout"))

    models: dict[str, Any] = {"group": GROUP, "version": VERSION, "plural": PLURAL, "registry": registry}

    def backoff(error: RetryLater, attempt: int) -> kopf.TemporaryError:
        delay = plan.retry_delay(attempt, config.resync.retry_delay_seconds, config.resync.retry_max_delay_seconds)
        return kopf.TemporaryError(error.message, delay=delay)

    def again(error: StaleModel, attempt: int) -> kopf.TemporaryError:
        # The MLModel kept changing under the pass (it reads and decides again a few times itself): retry with
        # backoff, never at once, since each failed handler makes kopf patch the MLModel again (a loop).
        delay = plan.retry_delay(attempt, config.resync.retry_delay_seconds, config.resync.retry_max_delay_seconds)
        return kopf.TemporaryError(str(error), delay=delay)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        return kopf.login_via_client(**kwargs)

    @kopf.on.create(**models, id="reconcile-on-create", when=served)
    @kopf.on.update(**models, id="reconcile-on-update", when=served)
    @kopf.on.resume(**models, id="reconcile-on-resume", when=served)
    def on_change(namespace: str | None, name: str, retry: int, **_: Any) -> None:
        leads()
        # A stalled model (a bad package, a failed first revision) returns normally: its state is in status
        # and events, and nothing changes until the spec does, so it is neither retried nor logged as an error.
        try:
            reconciler.reconcile(str(namespace), name)
        except RetryLater as error:
            raise backoff(error, retry) from None
        except StaleModel as error:
            raise again(error, retry) from None

    @kopf.timer(**models, id="resync", interval=config.resync.interval_seconds,
                initial_delay=config.resync.interval_seconds, when=served)
    def resync(namespace: str | None, name: str, **_: Any) -> None:
        leads()
        try:
            reconciler.reconcile(str(namespace), name, coalesce=True)
        except RetryLater as retry:
            log.warning("%s (the next resync retries)", retry.message)
        except StaleModel as stale:
            log.info("%s", stale)

    # A `when=` callback, not `field="status.rollout"`: kopf adds a filter's field to the essence it diffs for
    # on.update, so every rollout starting and ending would run the update handler and rewrite kopf's
    # last-handled-configuration annotation (two writes per rollout, one after the model is Ready).
    @kopf.timer(**models, id="rollout-check", interval=config.failure_detection.check_interval_seconds,
                initial_delay=config.failure_detection.check_interval_seconds, when=rolling_out)
    def rollout_check(namespace: str | None, name: str, **_: Any) -> None:
        leads()
        try:
            reconciler.reconcile(str(namespace), name, coalesce=True)
        except RetryLater as retry:
            log.info("%s", retry.message)
        except StaleModel as stale:
            log.info("%s", stale)

    @kopf.on.delete(**models, id="forget", optional=True, when=served)
    def forget(namespace: str | None, name: str, **_: Any) -> None:
        leads()
        reconciler.forget(str(namespace), name)

    @kopf.on.event("apps", "v1", "deployments", labels={names.LABEL_MANAGED_BY: names.MANAGED_BY},
                   registry=registry, id="runtime-changed", when=served)
    def runtime_changed(body: kopf.Body, namespace: str | None, **_: Any) -> None:
        owner = _owner(body)
        if owner is None or namespace is None:
            return
        leads()
        try:
            reconciler.reconcile(namespace, owner, coalesce=True)
        except (RetryLater, StaleModel) as retry:
            log.info("%s", retry)  # the MLModel's own handlers retry it
