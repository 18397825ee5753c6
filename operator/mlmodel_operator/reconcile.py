"""One idempotent reconcile pass per MLModel, for create, update, resume, resync and runtime changes.

observe the Deployment, ReplicaSets and pods -> the revision the spec asks for (validate its package, or
take it from history for spec.rollbackTo) -> decide (plan.decide: history, rollout, rollback, from the
evidence on the pods) -> render the target revision and apply what differs -> compute the status -> write
it (only if it changed) and post events. A package or placement problem stops the pass before anything
is applied: the serving Deployment is left exactly as it was. All state lives in the MLModel's status and
the objects, nothing only in memory; a revision that failed is written to status before the rollback is
applied, so an operator killed at any point decides the same when it starts again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from mlmodel_runtime.package import InvalidUri, PackageError

from mlmodel_operator import gates, names, plan
from mlmodel_operator.adapters import CheckedPackage, Credentials, KubeApi, PackageValidator
from mlmodel_operator.config import OperatorConfig
from mlmodel_operator.faults import FaultInjector
from mlmodel_operator.metrics import OperatorMetrics
from mlmodel_operator.render import RenderInput, render_deployment, render_service, template_fingerprint
from mlmodel_operator.spec import MLModel, MLModelStatus, PackageStatus, RevisionRecord, RevisionSettings
from mlmodel_operator.status import Failure, PassFacts, Revisions, compute_status, events_between, find, observe

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
        faults: FaultInjector | None = None,
    ) -> None:
        self.config = config
        self.kube = kube
        self.packages = packages
        self.metrics = metrics
        self.clock = clock
        self.faults = faults or FaultInjector()
        self.limits = plan.Limits.of(config.failure_detection)
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

    def forget(self, namespace: str, name: str) -> None:
        """The model is being deleted: drop its per-model metrics."""
        self.metrics.forget(namespace, name)

    # -- the pass --------------------------------------------------------------------------

    def _pass(self, namespace: str, name: str) -> Outcome | None:
        raw = self.kube.get_model(namespace, name)
        if raw is None or raw.get("metadata", {}).get("deletionTimestamp"):
            self.forget(namespace, name)
            return None  # deleted: owner references let the garbage collector remove the rest
        model = MLModel.model_validate(raw)
        previous = model.status
        now = self.clock()
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        live = self.kube.get_deployment(namespace, name)
        selector = names.selector_string(name)
        replicasets = self.kube.list_replicasets(namespace, selector) if live else []
        pods = self.kube.list_pods(namespace, selector) if live else []
        current = plan.live_template(live, observe(live, replicasets, pods).complete)

        failure: Failure | None = None
        pending: str | None = None
        wanted: RevisionRecord | None = None
        try:
            found = self._wanted(model, current, stamp)
            if isinstance(found, _Pending):
                pending = found.message
            else:
                wanted = found
        except plan.Refused as refused:
            failure = Failure(refused.reason, refused.message)
        except PackageError as error:  # permanent ones only: temporary ones come back as _Pending
            failure = Failure(error.reason, error.message)

        evidence = None
        rollout = previous.rollout
        if rollout is not None and rollout.revision == current.revision and not current.complete:
            evidence = plan.revision_failure(live, pods, rollout.revision, now, self.limits)
        retry_value = (raw.get("metadata", {}).get("annotations") or {}).get(names.RETRY_ANNOTATION)
        decision = plan.decide(
            plan.Inputs(
                status=previous,
                wanted=wanted,
                live=current,
                evidence=evidence,
                auto_rollback=model.spec.rollout.auto_rollback,
                retry=bool(retry_value) and retry_value != previous.last_retry,
                history_limit=model.spec.revision_history_limit,
                now=stamp,
            )
        )
        revisions = self._revisions(model, wanted, decision, retry_value or previous.last_retry)
        target = decision.target

        def facts(deployment: dict[str, Any] | None) -> PassFacts:
            return PassFacts(
                generation=model.metadata.generation,
                desired_replicas=model.spec.replicas,
                url=names.model_url(name, namespace, self.config.cluster_domain),
                selector=selector,
                observation=observe(deployment, replicasets, pods),
                package=wanted.package() if wanted else None,
                failure=failure,
                pending=pending,
                applied_revision=target.revision if target else None,
                revisions=revisions,
            )

        stored = previous
        if decision.failed_now is not None:
            # Write-ahead: the failure is in status before the rollback changes the Deployment, so that a
            # restarted operator knows the revision failed and never retries it.
            stored = self._write(raw, model, stored, compute_status(stored, facts(live), stamp), now)
            self._count_failure(model, decision)
            self.faults.reached("failure-recorded")

        applied: list[str] = []
        if target is not None:
            try:
                live, applied = self._apply(model, target, live)
            except plan.Refused as refused:  # e.g. a history entry's node pool left the configuration
                failure = Failure(refused.reason, refused.message)
            if "Deployment" in applied:
                self.faults.reached("applied")
                if decision.rolled_back:
                    self.faults.reached("rolled-back")

        status = compute_status(stored, facts(live), stamp)
        written = status != stored
        if written:
            stored = self._write(raw, model, stored, status, now)
        if decision.served_now is not None and previous.rollout and previous.rollout.revision == decision.served_now:
            self.metrics.rollouts.labels(result="succeeded").inc()
        serving = plan.serving_entry(status.history)
        self.metrics.model_state(
            namespace, name, [(c.type, c.status) for c in status.conditions],
            (serving.revision, serving.digest) if serving is not None and status.revision is not None else None,
        )
        if pending is not None:
            raise RetryLater(f"{model.key}: {pending}")
        ready_cond = find(status.conditions, "Ready")
        return Outcome(
            ready=bool(ready_cond and ready_cond.status == "True"),
            stalled=failure or self._stalled(status.conditions),
            applied=tuple(applied),
            status_written=written,
        )

    def _write(
        self, raw: dict[str, Any], model: MLModel, before: MLModelStatus, status: MLModelStatus, now: datetime
    ) -> MLModelStatus:
        """Patch the status and post the events of its transitions; returns what is stored now."""
        if status == before:
            return before
        self.kube.patch_model_status(model.metadata.namespace, model.metadata.name, status_body(status))
        for event in events_between(before, status):
            self.kube.post_event(raw, event.type, event.reason, event.message, now)
        ready = find(status.conditions, "Ready")
        log.info("%s: %s %s", model.key, ready.reason if ready else "?", ready.message if ready else "")
        return status

    def _count_failure(self, model: MLModel, decision: plan.Decision) -> None:
        failed = decision.failed_now
        assert failed is not None
        if decision.rolled_back:
            self.metrics.rollouts.labels(result="rolled_back").inc()
            self.metrics.rollbacks.labels(model.metadata.namespace, model.metadata.name, failed.reason or "").inc()
            serving = decision.serving
            log.warning("%s: revision %d failed (%s: %s); rolling back to revision %s", model.key, failed.revision,
                        failed.reason, failed.message, serving.revision if serving else "?")
        else:
            self.metrics.rollouts.labels(result="failed").inc()
            log.warning("%s: revision %d failed (%s: %s)", model.key, failed.revision, failed.reason, failed.message)

    @staticmethod
    def _revisions(
        model: MLModel, wanted: RevisionRecord | None, decision: plan.Decision, last_retry: str | None
    ) -> Revisions:
        blocked = decision.blocked
        why = Failure(blocked.reason or "Failed", blocked.message or "") if blocked is not None else None
        target = decision.target
        return Revisions(
            history=decision.history,
            rollout=decision.rollout,
            desired=wanted.revision if wanted else None,
            failed_revision=blocked.revision if blocked else None,
            rolled_back=why if decision.rolled_back else None,
            failed=why if not decision.rolled_back else None,
            auto_rollback=model.spec.rollout.auto_rollback,
            in_rollout=decision.rollout is not None and target is not None
            and decision.rollout.revision == target.revision,
            pinned=model.spec.rollback_to is not None,
            last_retry=last_retry,
        )

    def _wanted(self, model: MLModel, current: plan.LiveTemplate, stamp: str) -> RevisionRecord | _Pending:
        """The revision the spec asks for: spec.rollbackTo's from history, else spec.source's, validated."""
        spec, status = model.spec, model.status
        if spec.rollback_to is not None:
            number = spec.rollback_to.revision
            rollout = status.rollout if status.rollout and status.rollout.revision == number else None
            pinned = rollout or plan.find_entry(status.history, number)
            if pinned is None:
                kept = ", ".join(str(e.revision) for e in status.history) or "none"
                raise plan.Refused(
                    "RevisionNotInHistory",
                    f"spec.rollbackTo.revision {number} is not in status.history (kept: {kept}); "
                    "choose one of those or remove spec.rollbackTo",
                )
            return RevisionRecord(**{field: getattr(pinned, field) for field in RevisionRecord.model_fields})
        validated = self._validated_package(model)
        if isinstance(validated, _Pending):
            return validated
        pool = plan.resolve_pool(spec, self.config)
        fmt = plan.resolve_format(spec, validated.format, self.config)
        package = validated.model_copy(update={"format": fmt})
        draft = RenderInput(model=model, config=self.config, package=package, pool=pool, revision=0)
        fingerprint = template_fingerprint(draft)
        return RevisionRecord(
            revision=plan.revision_number(fingerprint, current, status),
            uri=package.uri,
            digest=package.digest,
            format=package.format,
            size=package.size,
            created_at=stamp,
            fingerprint=fingerprint,
            settings=RevisionSettings.of(spec),
            image=draft.runtime_image(),
        )

    def _validated_package(self, model: MLModel) -> PackageStatus | _Pending:
        """The package, validated now; _Pending when the store is unavailable.

        A package whose digest this model recorded before for the same URI is not hashed again. A store
        outage does not disturb a model whose package was already validated for this generation and URI:
        the status remembers it, and the pass goes on with that.
        """
        spec, status = model.spec, model.status
        known = {r.digest for r in [*status.history, status.rollout] if r is not None and r.uri == spec.source.uri}
        if status.package is not None and status.package.uri == spec.source.uri:
            known.add(status.package.digest)
        started = time.monotonic()
        try:
            checked = self.packages.check(spec.source, self._credentials(model), known)
        except InvalidUri as exc:
            self.metrics.validations.labels(result="InvalidSource").inc()
            raise plan.Refused("InvalidSource", f"spec.source.uri: {exc}") from None
        except PackageError as error:
            self.metrics.validations.labels(result=error.reason).inc()
            if not error.temporary:
                raise
            stored = status.package
            if (
                stored is not None
                and stored.uri == spec.source.uri
                and status.observed_generation == model.metadata.generation
            ):
                log.warning("%s: %s; keeping the package validated before", model.key, error.message)
                return stored
            return _Pending(error.message)
        finally:
            self.metrics.validation_seconds.observe(time.monotonic() - started)
        self.metrics.validations.labels(result="valid" if checked.hashed else "reused").inc()
        if failed_bounds := gates.evaluate(spec.quality_gate, checked.metrics):  # docs/quality.md
            raise plan.Refused(gates.REASON, gates.message(failed_bounds))
        return _package_status(spec.source.uri, checked)

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

    def _apply(
        self, model: MLModel, target: RevisionRecord, live: dict[str, Any] | None
    ) -> tuple[dict[str, Any] | None, list[str]]:
        """Render `target` (its own settings over the current spec) and apply what differs from the live objects."""
        spec = target.settings.apply_to(model.spec)
        pool = plan.resolve_pool(spec, self.config)
        inp = RenderInput(
            model=model.model_copy(update={"spec": spec}),
            config=self.config,
            package=target.package(),
            pool=pool,
            revision=target.revision,
            image=target.image,
        )
        applied: list[str] = []
        # The Deployment first: its pods take longest, the Service only routes to them.
        deployment = render_deployment(inp)
        action = plan.classify(live, deployment)
        if action is not plan.Action.UNCHANGED:
            live = self.kube.apply(deployment)
            applied.append("Deployment")
            log.info("%s: %s Deployment at revision %d", model.key, action.value, target.revision)
        service = render_service(inp)
        live_service = self.kube.get_service(model.metadata.namespace, model.metadata.name)
        if plan.classify(live_service, service) is not plan.Action.UNCHANGED:
            self.kube.apply(service)
            applied.append("Service")
        return live, applied

    @staticmethod
    def _stalled(conditions: Any) -> Failure | None:
        stalled = find(conditions, "Stalled")
        if stalled is not None and stalled.status == "True":
            return Failure(stalled.reason, stalled.message)
        return None


def status_body(status: MLModelStatus) -> dict[str, Any]:
    """The status as a merge patch: top-level nulls remove fields; history entries carry no nulls."""
    body = status.model_dump(mode="json", by_alias=True)
    body["history"] = [entry.model_dump(mode="json", by_alias=True, exclude_none=True) for entry in status.history]
    if status.rollout is not None:
        body["rollout"] = status.rollout.model_dump(mode="json", by_alias=True, exclude_none=True)
    return body


@dataclass(frozen=True)
class _Pending:
    """Validation could not run (the object store is unavailable or throttling)."""

    message: str


def _package_status(uri: str, checked: CheckedPackage) -> PackageStatus:
    return PackageStatus(uri=uri, digest=checked.digest, size=checked.size, format=checked.format)
