"""One idempotent reconcile pass per MLModel, for create, update, resume, resync and runtime changes.

validate the package -> plan (pool, format, revision) -> render -> apply what differs -> observe the
Deployment, ReplicaSets and pods -> compute the status -> write it (only if it changed) and post events.
A package or placement problem stops the pass before anything is applied: the serving Deployment is
left exactly as it was. All state lives in the MLModel's status and the objects; nothing only in memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from mlmodel_runtime.package import InvalidUri, PackageError, ValidatedPackage

from mlmodel_operator import names, plan
from mlmodel_operator.adapters import Credentials, KubeApi, PackageValidator
from mlmodel_operator.config import OperatorConfig
from mlmodel_operator.metrics import OperatorMetrics
from mlmodel_operator.render import RenderInput, render_deployment, render_service, template_fingerprint
from mlmodel_operator.spec import MLModel, PackageStatus
from mlmodel_operator.status import Failure, PassFacts, compute_status, events_between, find, observe

log = logging.getLogger(__name__)

T = TypeVar("T")


class RetryLater(Exception):
    """A temporary problem (object store unreachable): retry the pass later, with backoff."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Outcome:
    """What a pass ended with (for handlers, logs and metrics)."""

    ready: bool
    stalled: Failure | None
    applied: tuple[str, ...]  # kinds applied in this pass
    status_written: bool


class KeyedSerializer:
    """One pass at a time per model; a request that finds another already queued is dropped.

    The queued pass has not started yet, so it will read state at least as new as the dropped one
    would have: nothing is lost, and a burst of Deployment events costs one extra pass, not many.
    """

    @dataclass
    class _Slot:
        lock: threading.Lock
        queued: int = 0

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._slots: dict[str, KeyedSerializer._Slot] = {}

    def run(self, key: str, fn: Callable[[], T], *, coalesce: bool) -> T | None:
        with self._guard:
            slot = self._slots.setdefault(key, self._Slot(threading.Lock()))
            if coalesce and slot.queued > 0:
                return None
            slot.queued += 1
        try:
            with slot.lock:
                with self._guard:
                    slot.queued -= 1
                return fn()
        finally:
            with self._guard:
                if slot.queued == 0 and not slot.lock.locked():
                    self._slots.pop(key, None)


class Reconciler:
    """Holds the collaborators of a pass; `reconcile` is the one entry point."""

    def __init__(
        self,
        config: OperatorConfig,
        kube: KubeApi,
        packages: PackageValidator,
        metrics: OperatorMetrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.kube = kube
        self.packages = packages
        self.metrics = metrics
        self.clock = clock
        self.serializer = KeyedSerializer()

    def reconcile(self, namespace: str, name: str, *, coalesce: bool = False) -> Outcome | None:
        """Run one pass for the model (None: it is gone, or a queued pass will do this work)."""
        started = time.monotonic()
        try:
            outcome = self.serializer.run(f"{namespace}/{name}", lambda: self._pass(namespace, name), coalesce=coalesce)
        except RetryLater:
            self.metrics.reconciles.labels(outcome="retry").inc()
            raise
        except Exception:
            self.metrics.reconciles.labels(outcome="error").inc()
            raise
        finally:
            self.metrics.reconcile_seconds.observe(time.monotonic() - started)
        if outcome is not None:
            result = "ready" if outcome.ready else "stalled" if outcome.stalled else "progressing"
            self.metrics.reconciles.labels(outcome=result).inc()
        return outcome

    # -- the pass --------------------------------------------------------------------------

    def _pass(self, namespace: str, name: str) -> Outcome | None:
        raw = self.kube.get_model(namespace, name)
        if raw is None or raw.get("metadata", {}).get("deletionTimestamp"):
            return None  # deleted: owner references let the garbage collector remove the rest
        model = MLModel.model_validate(raw)
        live = self.kube.get_deployment(namespace, name)

        failure: Failure | None = None
        pending: str | None = None
        package: PackageStatus | None = None
        revision: int | None = None
        applied: list[str] = []
        try:
            validated = self._validated_package(model)
            if isinstance(validated, _Pending):
                pending = validated.message
            else:
                package = validated
                revision, live, applied = self._plan_and_apply(model, package, live)
        except plan.Refused as refused:
            failure = Failure(refused.reason, refused.message)
        except PackageError as error:  # permanent ones only: temporary ones come back as _Pending
            failure = Failure(error.reason, error.message)

        selector = names.selector_string(name)
        replicasets = self.kube.list_replicasets(namespace, selector) if live else []
        pods = self.kube.list_pods(namespace, selector) if live else []
        facts = PassFacts(
            generation=model.metadata.generation,
            desired_replicas=model.spec.replicas,
            url=names.model_url(name, namespace, self.config.cluster_domain),
            selector=selector,
            observation=observe(live, replicasets, pods),
            package=package,
            failure=failure,
            pending=pending,
            applied_revision=revision,
        )
        now = self.clock()
        status = compute_status(model.status, facts, now.strftime("%Y-%m-%dT%H:%M:%SZ"))
        written = status != model.status
        if written:
            self.kube.patch_model_status(namespace, name, status.model_dump(mode="json", by_alias=True))
            for event in events_between(model.status, status):
                self.kube.post_event(raw, event.type, event.reason, event.message, now)
            ready = find(status.conditions, "Ready")
            log.info("%s: %s %s", model.key, ready.reason if ready else "?", ready.message if ready else "")
        if pending is not None:
            raise RetryLater(f"{model.key}: {pending}")
        ready_cond = find(status.conditions, "Ready")
        return Outcome(
            ready=bool(ready_cond and ready_cond.status == "True"),
            stalled=failure or self._stalled(status.conditions),
            applied=tuple(applied),
            status_written=written,
        )

    def _validated_package(self, model: MLModel) -> PackageStatus | _Pending:
        """The package, validated now; _Pending when the store is unavailable.

        A store outage does not disturb a model whose package was already validated for this
        generation and URI: the status remembers it, and the pass goes on with that.
        """
        spec = model.spec
        try:
            validated = self.packages.validate(spec.source, self._credentials(model))
        except InvalidUri as exc:
            self.metrics.validations.labels(result="InvalidSource").inc()
            raise plan.Refused("InvalidSource", f"spec.source.uri: {exc}") from None
        except PackageError as error:
            self.metrics.validations.labels(result=error.reason).inc()
            if not error.temporary:
                raise
            known = model.status.package
            if (
                known is not None
                and known.uri == spec.source.uri
                and model.status.observed_generation == model.metadata.generation
            ):
                log.warning("%s: %s; keeping the package validated before", model.key, error.message)
                return known
            return _Pending(error.message)
        self.metrics.validations.labels(result="valid").inc()
        return _package_status(spec.source.uri, validated)

    def _credentials(self, model: MLModel) -> Credentials | None:
        secret_name = model.spec.source.credentials_secret
        if not secret_name:
            return None
        data = self.kube.read_secret(model.metadata.namespace, secret_name)
        where = f"spec.source.credentialsSecret: Secret {secret_name!r}"
        if data is None:
            raise plan.Refused("CredentialsNotFound", f"{where} not found in namespace {model.metadata.namespace}")
        keys = self.config.object_store.secret_keys
        missing = [k for k in (keys.access_key_id, keys.secret_access_key) if not data.get(k)]
        if missing:
            raise plan.Refused("CredentialsNotFound", f"{where} has no key {', '.join(missing)}")
        return Credentials(access_key=data[keys.access_key_id], secret_key=data[keys.secret_access_key])

    def _plan_and_apply(
        self, model: MLModel, package: PackageStatus, live: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any] | None, list[str]]:
        pool = plan.resolve_pool(model.spec, self.config)
        fmt = plan.resolve_format(model.spec, package.format, self.config)
        package = package.model_copy(update={"format": fmt})
        draft = RenderInput(model=model, config=self.config, package=package, pool=pool, revision=0)
        revision = plan.decide_revision(template_fingerprint(draft), live, model.status)
        inp = RenderInput(model=model, config=self.config, package=package, pool=pool, revision=revision)
        applied: list[str] = []
        # The Deployment first: its pods take longest, the Service only routes to them.
        deployment = render_deployment(inp)
        action = plan.classify(live, deployment)
        if action is not plan.Action.UNCHANGED:
            live = self.kube.apply(deployment)
            applied.append("Deployment")
            log.info("%s: %s Deployment at revision %d", model.key, action.value, revision)
        service = render_service(inp)
        live_service = self.kube.get_service(model.metadata.namespace, model.metadata.name)
        if plan.classify(live_service, service) is not plan.Action.UNCHANGED:
            self.kube.apply(service)
            applied.append("Service")
        return revision, live, applied

    @staticmethod
    def _stalled(conditions: Any) -> Failure | None:
        stalled = find(conditions, "Stalled")
        if stalled is not None and stalled.status == "True":
            return Failure(stalled.reason, stalled.message)
        return None


@dataclass(frozen=True)
class _Pending:
    """Validation could not run (the object store is unavailable or throttling)."""

    message: str


def _package_status(uri: str, validated: ValidatedPackage) -> PackageStatus:
    return PackageStatus(uri=uri, digest=validated.digest, size=validated.total_size, format=validated.format.value)
