"""One idempotent reconcile pass per MLModel, for create, update, resume, resync and runtime changes:
read -> plan -> act.

`read` takes one snapshot of the MLModel and the objects it owns (pass_plan.World); `validate` checks the
package spec.source names (the object store; the model's Secret); `pass_plan.make_plan` decides everything,
purely; `act` carries the plan out in order: write ahead (a failed revision's status, before the rollback
changes the Deployment), apply what differs, write the status, each status write preceded by the events of
its transition under idempotent names. A package or placement problem stops the pass before anything is
applied: the serving Deployment is left exactly as it was. All state lives in the MLModel's status and the
objects, nothing only in memory, so an operator killed at any point decides the same when it starts again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from mlmodel_runtime.package import InvalidUri, PackageError

from mlmodel_operator import access, autoscaler, gates, names, plan
from mlmodel_operator.adapters import CheckedPackage, Credentials, StaleModel
from mlmodel_operator.adapters.scrape import MetricsScraper
from mlmodel_operator.canary import analysis, metrics
from mlmodel_operator.canary.rollout import WindowResult
from mlmodel_operator.config import OperatorConfig
from mlmodel_operator.faults import FaultInjector
from mlmodel_operator.metrics import OperatorMetrics
from mlmodel_operator.pass_plan import (
    Pending,
    Plan,
    StatusWrite,
    Validation,
    World,
    make_plan,
    ready,
    stalled,
    status_write,
)
from mlmodel_operator.render.auth import reviewer_selector, token_reviewer_name
from mlmodel_operator.spec import MLModel, MLModelStatus, PackageStatus, Source
from mlmodel_operator.status import Failure

log = logging.getLogger(__name__)

T = TypeVar("T")

# Passes in a row whose status write finds the MLModel changed since it was read, before StaleModel reaches the
# handler (kopf writes its annotations on the MLModel between and after handlers; a handler that fails makes it
# write more, and at once).
STALE_ATTEMPTS = 3


class RetryLater(Exception):
    """A temporary problem (object store unreachable): retry the pass later, with backoff."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class PassResult:
    """How a pass left the model (for handlers, logs and metrics)."""

    ready: bool
    stalled: Failure | None


class Kube(Protocol):
    """The Kubernetes API as a pass uses it (adapters.kube.KubeApi; a fake in the fake-API tests)."""

    def get_model(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def get_http_route(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def delete_canary_object(self, kind: str, namespace: str, name: str) -> bool: ...
    def get_service(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]: ...
    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None: ...
    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]: ...
    def patch_model_status(
        self, namespace: str, name: str, status: Mapping[str, Any], resource_version: str | None = None
    ) -> str: ...
    def post_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str, now: datetime,
        name: str | None = None,
    ) -> None: ...
    # spec.autoscaling (mlmodel_operator.autoscaler)
    def get_autoscaler(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...
    def delete_autoscaler(self, kind: str, namespace: str, name: str) -> bool: ...
    def scale_model(self, namespace: str, name: str, replicas: int) -> None: ...
    # spec.auth's token reviewer and spec.networkPolicy (mlmodel_operator.access)
    def get_access_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...
    def list_cluster_role_bindings(self, selector: str) -> list[dict[str, Any]]: ...
    def delete_access_object(self, kind: str, namespace: str, name: str) -> bool: ...


class Packages(Protocol):
    """Package validation against the object store (adapters.packages.PackageValidator; a fake in tests)."""

    def check(self, source: Source, credentials: Credentials | None, known_digests: frozenset[str]) -> CheckedPackage:
        ...


# pod name -> its metrics URL => pod name -> the text it served (adapters.scrape.MetricsScraper; a fake in tests)
Scrape = Callable[[Mapping[str, str]], Mapping[str, str]]


@dataclass(frozen=True)
class WindowStart:
    """The scrape a canary's analysis window started from (in memory only: an operator that starts again starts
    a new window at the same step, which status.canary keeps)."""

    revision: int
    step: int
    at: float  # time.monotonic()
    samples: Mapping[str, metrics.Samples]


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
        kube: Kube,
        packages: Packages,
        metrics: OperatorMetrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        faults: FaultInjector | None = None,
        scrape: Scrape | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.kube = kube
        self.packages = packages
        self.metrics = metrics
        self.clock = clock
        self.faults = faults or FaultInjector()
        self.serializer = KeyedSerializer()
        self.scrape: Scrape = scrape or MetricsScraper()
        self.monotonic = monotonic
        self.windows: dict[str, WindowStart] = {}

    def reconcile(self, namespace: str, name: str, *, coalesce: bool = False) -> PassResult | None:
        """Run one pass for the model (None: it is gone, or a queued pass will do this work)."""
        started = time.monotonic()
        try:
            result = self.serializer.run(f"{namespace}/{name}", lambda: self._pass(namespace, name), coalesce=coalesce)
        except RetryLater:
            self.metrics.reconciles.labels(outcome="retry").inc()
            raise
        except Exception:
            self.metrics.reconciles.labels(outcome="error").inc()
            raise
        finally:
            self.metrics.reconcile_seconds.observe(time.monotonic() - started)
        if result is not None:
            outcome = "ready" if result.ready else "stalled" if result.stalled else "progressing"
            self.metrics.reconciles.labels(outcome=outcome).inc()
        return result

    def forget(self, namespace: str, name: str) -> None:
        """The model is being deleted: drop its per-model metrics."""
        self.metrics.forget(namespace, name)
        self.windows.pop(f"{namespace}/{name}", None)
        self.revoke(namespace, name)

    # -- a canary's analysis windows (mlmodel_operator.canary) ----------------------------------

    def analyse(self, world: World) -> WindowResult | None:
        """The running canary's analysis window, judged when it ended in this pass: the stable and candidate pods
        are scraped at each window's boundary, the start held in memory until the end."""
        model = world.model
        key, running, rules = model.key, model.status.canary, model.spec.rollout.canary
        if running is None or running.phase != "Progressing" or rules is None:
            self.windows.pop(key, None)
            return None
        start, now = self.windows.get(key), self.monotonic()
        same = start is not None and (start.revision, start.step) == (running.revision, running.step)
        if start is not None and same and now - start.at < rules.analysis.window_seconds:
            return None
        revisions = {str(running.revision), str(running.stable_revision)}
        targets = {
            pod["metadata"]["name"]: f"http://{pod['status']['podIP']}:{names.METRICS_PORT}/metrics"
            for pod in world.pods
            if (pod.get("status") or {}).get("podIP") and (pod.get("status") or {}).get("phase") == "Running"
            and (pod["metadata"].get("labels") or {}).get(names.REVISION_LABEL) in revisions
        }
        samples = {pod: metrics.parse_samples(text) for pod, text in self.scrape(targets).items()}
        self.windows[key] = WindowStart(running.revision, running.step, now, samples)
        if start is None or not same:
            return None
        name, bounds = model.metadata.name, rules.analysis
        stable = metrics.window_between(start.samples, samples, model=name, revision=str(running.stable_revision))
        candidate = metrics.window_between(start.samples, samples, model=name, revision=str(running.revision))
        judgement = analysis.judge(stable, candidate, analysis.Rules(
            min_requests=bounds.min_requests, max_error_ratio=bounds.max_error_ratio,
            max_latency_ratio=bounds.max_latency_ratio, max_disagreement=bounds.max_disagreement))
        log.info("%s: canary of revision %d, step %d: analysis %s (%s)", key, running.revision, running.step,
                 judgement.verdict.value, judgement.message)
        return WindowResult(judgement, stable, candidate)

    def _pass(self, namespace: str, name: str) -> PassResult | None:
        window: WindowResult | None = None
        for attempt in range(1, STALE_ATTEMPTS + 1):
            world = self.read(namespace, name)
            if world is None:
                self.forget(namespace, name)
                return None  # deleted: owner references let the garbage collector remove the rest
            if attempt == 1:
                window = self.analyse(world)  # once a pass: a window that ended is judged once
            world = replace(world, window=window)
            if autoscaler.scale_to(world.model, _running(world.deployment)) is not None:
                world = self._scale_first(world)
                if world is None:
                    return None
            validation = None if world.model.spec.rollback_to is not None else self.validate(world.model)
            try:
                p = make_plan(world, validation, self.config, self.clock())
                self.secure(world, p)  # before the Deployment: its pods' ServiceAccount exists when they start
                result = self.act(p)
                self.autoscale(world)
                return result
            except StaleModel:
                # Written since it was read (kopf's own annotations, most often): read again, decide again. What
                # this attempt wrote is level-based, and its events come back under the same names.
                if attempt == STALE_ATTEMPTS:
                    raise
                log.debug("%s/%s changed since it was read (attempt %d); reading it again", namespace, name, attempt)
        raise AssertionError("unreachable")

    # -- spec.auth's token reviewer and spec.networkPolicy (mlmodel_operator.access) ------------

    def secure(self, world: World, p: Plan) -> None:
        """Apply or delete the model's token reviewer (ServiceAccount, ClusterRoleBinding) and NetworkPolicy."""
        model = world.model
        meta = model.metadata
        deployments = (p.deployment or world.deployment, p.canary_deployment or world.canary_deployment)
        needed = access.reviewer_needed(model, deployments, world.pods)
        account_name, _ = token_reviewer_name(meta.namespace, meta.name)
        account = self.kube.get_access_object("ServiceAccount", meta.namespace, account_name)
        bindings = None
        if access.must_list_bindings(needed, account):
            bindings = tuple(self.kube.list_cluster_role_bindings(reviewer_selector(meta.namespace, meta.name)))
        policy = self.kube.get_access_object("NetworkPolicy", meta.namespace, meta.name)
        todo = access.decide(model, self.config, needed, access.Live(account, bindings, policy))
        for obj in todo.apply:
            self.kube.apply(obj)
            log.info("%s: applied its %s %s", model.key, obj["kind"], obj["metadata"]["name"])
        for ref in todo.delete:
            if self.kube.delete_access_object(ref.kind, ref.namespace, ref.name):
                log.info("%s: deleted its %s %s (no longer needed)", model.key, ref.kind, ref.name)

    def revoke(self, namespace: str, name: str) -> None:
        """The model is gone or being deleted: its reviewer's ClusterRoleBindings, which it cannot own, go too."""
        for binding in self.kube.list_cluster_role_bindings(reviewer_selector(namespace, name)):
            if self.kube.delete_access_object("ClusterRoleBinding", "", binding["metadata"]["name"]):
                log.info("%s/%s: deleted its ClusterRoleBinding %s", namespace, name, binding["metadata"]["name"])

    # -- spec.autoscaling (mlmodel_operator.autoscaler) --------------------------------------

    def _scale_first(self, world: World) -> World | None:
        """spec.replicas unset under spec.autoscaling: set it through the scale subresource, then read again."""
        meta = world.model.metadata
        replicas = autoscaler.scale_to(world.model, _running(world.deployment))
        assert replicas is not None
        self.kube.scale_model(meta.namespace, meta.name, replicas)
        log.info("%s: spec.replicas set to %d for the autoscaler to start from", world.model.key, replicas)
        return self.read(meta.namespace, meta.name)

    def autoscale(self, world: World) -> None:
        """Apply or delete the autoscaler; write status.autoscaling when it changed (after the pass's status)."""
        model = world.model
        meta = model.metadata
        if model.spec.autoscaling is None and model.status.autoscaling is None:
            return
        live = {kind: self.kube.get_autoscaler(kind, meta.namespace, meta.name) for kind in autoscaler.KINDS}
        hpa = live["HorizontalPodAutoscaler"]
        todo = autoscaler.decide(model, self.config, live, hpa, _running(world.deployment))
        for kind in todo.delete:
            self.kube.delete_autoscaler(kind, meta.namespace, meta.name)
            log.info("%s: deleted its %s (spec.autoscaling %s)", model.key, kind,
                     "removed" if model.spec.autoscaling is None else "now carried out by another engine")
        if todo.apply is not None:
            self.kube.apply(todo.apply)
            log.info("%s: applied its %s", model.key, todo.apply["kind"])
        if todo.status != model.status.autoscaling:
            if todo.status is not None and todo.status.problem and (
                    model.status.autoscaling is None or model.status.autoscaling.problem != todo.status.problem):
                log.warning("%s: the autoscaler cannot scale: %s", model.key, todo.status.problem)
            # Its events (the HPA cannot scale / scales again) first, under their names, as for every status write.
            write = status_write(world, model.status, model.status.model_copy(update={"autoscaling": todo.status}))
            now = self.clock()
            for event in write.events:
                self.kube.post_event(world.raw, event.type, event.reason, event.message, now, name=event.name)
            body = {"autoscaling": todo.status.model_dump(mode="json", by_alias=True) if todo.status else None}
            self.kube.patch_model_status(meta.namespace, meta.name, body)

    # -- read ------------------------------------------------------------------------------

    def read(self, namespace: str, name: str) -> World | None:
        """One snapshot of the MLModel and its objects; None when it is gone or being deleted."""
        raw = self.kube.get_model(namespace, name)
        if raw is None or raw.get("metadata", {}).get("deletionTimestamp"):
            return None
        model = MLModel.model_validate(raw)
        deployment = self.kube.get_deployment(namespace, name)
        selector = names.selector_string(name)
        candidate = canary_service = shadow_config = None
        routed = self.config.canary.gateway is not None
        pods = self.kube.list_pods(namespace, selector) if deployment else []
        if model.spec.rollout.strategy == "Canary" or model.status.canary is not None:
            candidate = self.kube.get_deployment(namespace, names.canary_name(name))
            canary_service = self.kube.get_service(namespace, names.canary_name(name))
            shadow_config = self.kube.get_config_map(namespace, names.shadow_config_name(name))
            if candidate is not None:  # its pods in a shadow-only step are not the model's Service's
                seen = {pod["metadata"]["name"] for pod in pods}
                pods += [pod for pod in self.kube.list_pods(namespace, names.canary_selector_string(name))
                         if pod["metadata"]["name"] not in seen]
        return World(
            raw=raw,
            model=model,
            deployment=deployment,
            pods=pods,
            service=self.kube.get_service(namespace, name),
            canary_deployment=candidate,
            canary_service=canary_service,
            shadow_config=shadow_config,
            http_route=self.kube.get_http_route(namespace, name) if routed else None,
            routed=routed,
        )

    def validate(self, model: MLModel) -> Validation:
        """spec.source's package, validated now; Pending when the store is unavailable; Failure when refused.

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
            checked = self.packages.check(spec.source, self._credentials(model), frozenset(known))
        except plan.Refused as refused:
            return Failure(refused.reason, refused.message)
        except InvalidUri as exc:
            self.metrics.validations.labels(result="InvalidSource").inc()
            return Failure("InvalidSource", f"spec.source.uri: {exc}")
        except PackageError as error:
            self.metrics.validations.labels(result=error.reason).inc()
            if not error.temporary:
                return Failure(error.reason, error.message)
            stored = status.package
            if (
                stored is not None
                and stored.uri == spec.source.uri
                and status.observed_generation == model.metadata.generation
            ):
                log.warning("%s: %s; keeping the package validated before", model.key, error.message)
                return stored
            return Pending(error.message)
        finally:
            self.metrics.validation_seconds.observe(time.monotonic() - started)
        self.metrics.validations.labels(result="valid" if checked.hashed else "reused").inc()
        if failed_bounds := gates.evaluate(spec.quality_gate, checked.metrics):  # docs/quality.md
            return Failure(gates.REASON, gates.message(failed_bounds))
        return PackageStatus(uri=spec.source.uri, digest=checked.digest, size=checked.size, format=checked.format,
                             examples=checked.examples or None)

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

    # -- act -------------------------------------------------------------------------------

    def act(self, p: Plan) -> PassResult:
        """Carry out the plan: write ahead, apply, write the status; count and log what happened."""
        model = p.world.model
        version = p.world.resource_version
        if p.write_ahead is not None:
            version = self._write(model, p.world.raw, p.write_ahead, version)
            self._count(p)
            self.faults.reached("failure-recorded")
        applied = None
        meta = model.metadata
        # The candidate goes first when a canary ends: the GPU budget holds while the model's Deployment grows back.
        for kind in p.delete_canary:
            name = {"ConfigMap": names.shadow_config_name(meta.name), "HTTPRoute": meta.name}.get(
                kind, names.canary_name(meta.name))
            if self.kube.delete_canary_object(kind, meta.namespace, name):
                log.info("%s: deleted the canary's %s %s", model.key, kind, name)
        for extra in (p.canary_service, p.shadow_config, p.http_route):
            if extra is not None:
                self.kube.apply(extra)
                log.info("%s: applied the canary's %s %s", model.key, extra["kind"], extra["metadata"]["name"])
        if p.canary_deployment is not None:
            self.kube.apply(p.canary_deployment)
            log.info("%s: applied the canary's Deployment %s at revision %s (%s replicas)", model.key,
                     p.canary_deployment["metadata"]["name"], p.transition.target.revision if p.transition.target
                     else "?", p.canary_deployment["spec"]["replicas"])
        if p.deployment is not None:
            applied = self.kube.apply(p.deployment)
            action = plan.Action.CREATE if p.world.deployment is None else plan.Action.UPDATE
            log.info("%s: %s Deployment at revision %s", model.key, action.value, p.deployment_revision)
            self.faults.reached("applied")
            if p.transition.rolled_back:
                self.faults.reached("rolled-back")
        if p.service is not None:
            self.kube.apply(p.service)
        final = p.settle(applied)
        self._write(model, p.world.raw, final, version)
        if p.write_ahead is None:
            self._count(p)
        serving = plan.serving_entry(final.status.history)
        self.metrics.model_state(
            model.metadata.namespace, model.metadata.name, [(c.type, c.status) for c in final.status.conditions],
            (serving.revision, serving.digest) if serving is not None and final.status.revision is not None else None,
        )
        self.metrics.canary_state(meta.namespace, meta.name, final.status.canary, model.status.canary,
                                  final.status.history)
        if p.pending is not None:
            raise RetryLater(f"{model.key}: {p.pending}")
        return PassResult(ready=ready(final.status), stalled=p.failure or stalled(final.status))

    def _write(self, model: MLModel, raw: Mapping[str, Any], write: StatusWrite, version: str | None) -> str | None:
        """Post the transition's events, then patch the status (resourceVersion-fenced); the new resourceVersion.

        Events first, under names derived from the transition: a pass killed before the status write is
        followed by one that posts the same names again (answered 409, nothing doubled), not by one that
        finds the status already written and has nothing left to post."""
        if not write.changed:
            return version
        now = self.clock()
        for event in write.events:
            self.kube.post_event(raw, event.type, event.reason, event.message, now, name=event.name)
        if any(event.type == "Warning" for event in write.events):
            self.faults.reached("warning-posted")
        meta = model.metadata
        # Not fenced by the read's resourceVersion: kopf patches its annotations on the MLModel between and
        # after handlers, and in full suite runs fenced writes found it changed pass after pass for minutes (a
        # rollback held back). The Lease fence (adapters.kube) is what keeps a deposed replica from writing.
        version = self.kube.patch_model_status(meta.namespace, meta.name, status_body(write.status))
        cond = next((c for c in write.status.conditions if c.type == "Ready"), None)
        log.info("%s: %s %s", model.key, cond.reason if cond else "?", cond.message if cond else "")
        return version

    def _count(self, p: Plan) -> None:
        counts, key = p.counts, p.world.model.key
        if counts.rollout is not None:
            self.metrics.rollouts.labels(result=counts.rollout).inc()
        failed = p.transition.failed_now
        if counts.rollback_reason is not None:
            meta = p.world.model.metadata
            self.metrics.rollbacks.labels(meta.namespace, meta.name, counts.rollback_reason).inc()
        if failed is not None:
            back = p.transition.target.revision if p.transition.rolled_back and p.transition.target else None
            log.warning("%s: revision %d failed (%s: %s)%s", key, failed.revision, failed.reason, failed.message,
                        f"; rolling back to revision {back}" if back is not None else "")


def _running(deployment: Mapping[str, Any] | None) -> int | None:
    """The Deployment's replicas as the operator set them (None: no Deployment yet)."""
    if deployment is None:
        return None
    value = (deployment.get("spec") or {}).get("replicas")
    return int(value) if value is not None else None


def status_body(status: MLModelStatus) -> dict[str, Any]:
    """The status as a merge patch: top-level nulls remove fields; history entries carry no nulls."""
    body = status.model_dump(mode="json", by_alias=True)
    body["history"] = [entry.model_dump(mode="json", by_alias=True, exclude_none=True) for entry in status.history]
    if status.rollout is not None:
        body["rollout"] = status.rollout.model_dump(mode="json", by_alias=True, exclude_none=True)
    return body
