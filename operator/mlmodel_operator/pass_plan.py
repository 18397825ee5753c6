"""One reconcile pass as data (pure): what the pass read (World), what it will do (Plan), nothing in between.

`make_plan(world, validation, config, now)` takes the objects as read and the package's validation (the only
I/O a decision needs besides the reads), and decides everything: the revision the spec asks for, the
transition of the revisions (plan.advance), the objects to apply, the status to write ahead of them when a
revision failed, the events of each status write and the metrics to count. `reconcile.Reconciler.act` then
carries it out in order; the status after the apply is `Plan.settle(applied)`, a pure function of what the
apply returned.

The write-ahead: when a revision fails in this pass, its failure (history: Failed; Stalled: RolledBack) is
written to status *before* the rollback changes the Deployment, so that an operator killed in between knows,
when it starts again, that the revision failed and never retries it. Such a pass writes status twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from mlmodel_operator import names, plan
from mlmodel_operator.canary import rollout as canary
from mlmodel_operator.config import OperatorConfig
from mlmodel_operator.render import RenderInput, render_deployment, render_service, template_fingerprint
from mlmodel_operator.render.canary import render_canary_service, render_http_route, render_shadow_config
from mlmodel_operator.render.owner import model_owner_reference
from mlmodel_operator.spec import (
    CanaryStatus,
    MLModel,
    MLModelStatus,
    PackageStatus,
    RevisionRecord,
    RevisionSettings,
)
from mlmodel_operator.status import (
    Failure,
    Observation,
    PassFacts,
    Revisions,
    compute_status,
    event_name,
    events_between,
    find,
    observe,
)
from mlmodel_operator.workload import Deployment, Limits, Problem

Object = Mapping[str, Any]


@dataclass(frozen=True)
class World:
    """What one pass read: the MLModel as stored and the objects it owns (the Deployment, its pods, the Service),
    in one snapshot."""

    raw: Object  # the MLModel as read (events name it as their involved object)
    model: MLModel
    deployment: Object | None = None
    pods: Sequence[Object] = ()  # of the model's Deployment and, during a canary, of the candidate's
    service: Object | None = None
    canary_deployment: Object | None = None  # the candidate's Deployment of a canary (names.canary_name)
    canary_service: Object | None = None  # the candidate's Service, with shadow traffic (names.canary_name)
    shadow_config: Object | None = None  # the shadow ConfigMap (names.shadow_config_name)
    http_route: Object | None = None  # the model's HTTPRoute (config.canary.gateway)
    routed: bool = False  # config.canary.gateway is set: the model's traffic goes through its HTTPRoute
    window: canary.WindowResult | None = None  # the running canary's analysis window that ended in this pass

    def annotation(self, key: str) -> str | None:
        value = ((self.raw.get("metadata") or {}).get("annotations") or {}).get(key)
        return value if isinstance(value, str) and value else None

    @property
    def retry_annotation(self) -> str | None:
        return self.annotation(names.RETRY_ANNOTATION)

    @property
    def resource_version(self) -> str | None:
        return self.model.metadata.resource_version or None

    def observation(self, deployment: Object | None) -> Observation:
        return observe(deployment, self.pods)


@dataclass(frozen=True)
class Pending:
    """Validation could not run (the object store is unavailable or throttling): retry the pass later."""

    message: str


# The package of spec.source, as the pass found it: validated; not validated yet (Pending); refused
# (Failure); None when the spec asks for no package (spec.rollbackTo renders a revision from history).
Validation = PackageStatus | Pending | Failure | None


@dataclass(frozen=True)
class Event:
    """An event to post, under its deterministic name (status.event_name)."""

    name: str
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class StatusWrite:
    """A status to write over `before` (what is stored), and the events of that transition, posted first."""

    before: MLModelStatus
    status: MLModelStatus
    events: tuple[Event, ...] = ()

    @property
    def changed(self) -> bool:
        return self.status != self.before


@dataclass(frozen=True)
class Counts:
    """What the pass adds to the operator's counters."""

    rollout: Literal["succeeded", "failed", "rolled_back"] | None = None
    rollback_reason: str | None = None  # a rollback, by the failed revision's reason


@dataclass(frozen=True)
class Plan:
    """What one pass does, in order: write ahead (a failed revision), apply, write the status."""

    world: World
    transition: plan.Transition
    facts: PassFacts  # for the status: what the pass found and decided
    stamp: str
    write_ahead: StatusWrite | None = None  # before anything is applied; None when no revision failed now
    deployment: Object | None = None  # to apply (it differs from the live one); None: leave it
    service: Object | None = None  # to apply; None: leave it
    canary_deployment: Object | None = None  # the candidate's, to apply; None: leave it
    canary_service: Object | None = None  # the candidate's Service (shadow copies go there), to apply
    shadow_config: Object | None = None  # the shadow ConfigMap the model's runtimes follow, to apply
    http_route: Object | None = None  # the model's HTTPRoute, to apply
    delete_canary: tuple[str, ...] = ()  # kinds of the canary's objects to delete: the canary (or its shadow) ended
    failure: Failure | None = None  # the spec cannot be served as it is: nothing of it was applied
    pending: str | None = None  # validation could not run: the pass is retried
    counts: Counts = Counts()

    @property
    def deployment_revision(self) -> int | None:
        """The revision of the model's Deployment this pass applies (the transition's target, or the stable
        revision while a canary runs)."""
        return Deployment.of(self.deployment).revision if self.deployment is not None else None

    @property
    def stored_before_apply(self) -> MLModelStatus:
        """The status stored once the write-ahead (if any) is written."""
        return self.write_ahead.status if self.write_ahead is not None else self.world.model.status

    def settle(self, applied: Object | None) -> StatusWrite:
        """The status after the apply: from the Deployment the apply returned, else the one read."""
        deployment = applied if applied is not None else self.world.deployment
        facts = replace(self.facts, observation=self.world.observation(deployment))
        return status_write(self.world, self.stored_before_apply, compute_status(self.stored_before_apply, facts,
                                                                                 self.stamp))


def make_plan(world: World, validation: Validation, config: OperatorConfig, now: datetime) -> Plan:
    """The whole pass, decided (see the module's docstring)."""
    previous = world.model.status
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    observed = world.observation(world.deployment)
    live = plan.live_template(world.deployment, observed.complete)
    wanted, failure = _wanted(world.model, validation, live, config, stamp)
    running = _canary_step(world, world.model.status.rollout, now, stamp)
    transition = _transition(world, wanted, live, config, now, stamp, running)
    step = _canary_after(world, transition, running, now, stamp)
    facts = _facts(world, validation, wanted, failure, transition, observed, config, step,
                   _canary_status(world, transition, step, running))

    write_ahead = None
    if transition.failed_now is not None:
        write_ahead = status_write(world, previous, compute_status(previous, facts, stamp))
    target, replicas, model = transition.target, None, world.model
    if step is not None and step.status.phase == "Progressing":
        target, replicas = transition.serving, step.status.stable_replicas  # the model's Deployment keeps serving
    elif step is not None and step.status.phase == "Promoting":
        # The candidate's revision replaces the stable pods one by one (no surge: the GPU budget holds), the
        # candidate serving meanwhile.
        replicas = step.status.stable_replicas
        model = _with_strategy(model, "Replace")
    deployment, service, refused = _changed_objects(replace(world, model=model), target, config, replicas)
    candidate = canary_service = shadow_config = None
    if refused is None and step is not None and transition.target is not None:
        # Behind the model's Service only where the split is by replicas and the step has a weight.
        serving = not world.routed and (step.status.phase != "Progressing" or step.status.weight > 0)
        candidate, _, refused = _changed_objects(world, transition.target, config, step.status.candidate_replicas,
                                                 canary=True, serving=serving)
        if refused is None:
            canary_service, shadow_config = _shadow_objects(world, transition.target, config, step)
    route = _route(world, config, step)
    # Another's object under one of the canary's names is neither applied over nor deleted.
    owner = model_owner_reference(world.model)
    others = {kind: plan.foreign(live, owner) for kind, live in (
        ("HTTPRoute", world.http_route), ("Deployment", world.canary_deployment),
        ("Service", world.canary_service), ("ConfigMap", world.shadow_config))}
    taken = [others[kind] for kind, wanted in (("Service", canary_service), ("ConfigMap", shadow_config),
                                               ("HTTPRoute", route)) if wanted is not None and others[kind]]
    if refused is None and taken:
        refused = Failure("NameConflict", str(taken[0]))
    if refused is not None:
        facts = replace(facts, failure=refused)
    deletes = tuple(kind for kind, live, wanted in (
        ("HTTPRoute", world.http_route, route),
        ("Deployment", world.canary_deployment, step),
        ("Service", world.canary_service, canary_service),
        ("ConfigMap", world.shadow_config, shadow_config),
    ) if live is not None and wanted is None and others[kind] is None)
    canary_service = None if others["Service"] else canary_service
    shadow_config = None if others["ConfigMap"] else shadow_config
    route = None if others["HTTPRoute"] else route
    return Plan(
        world=world,
        transition=transition,
        facts=facts,
        stamp=stamp,
        write_ahead=write_ahead,
        deployment=deployment,
        service=service,
        canary_deployment=candidate,
        canary_service=_if_changed(world.canary_service, canary_service),
        shadow_config=_if_changed(world.shadow_config, shadow_config),
        http_route=_if_changed(world.http_route, route),
        delete_canary=deletes,
        failure=facts.failure,
        pending=facts.pending,
        counts=_counts(transition, previous),
    )


def _wanted(
    model: MLModel, validation: Validation, live: plan.LiveTemplate, config: OperatorConfig, stamp: str
) -> tuple[RevisionRecord | None, Failure | None]:
    """The revision the spec asks for, or why it cannot be served; (None, None) while validation is pending."""
    if isinstance(validation, Failure):
        return None, validation
    if isinstance(validation, Pending):
        return None, None
    try:
        return wanted_revision(model, validation, live, config, stamp), None
    except plan.Refused as refused:
        return None, Failure(refused.reason, refused.message)


# -- canary (mlmodel_operator.canary.rollout) ---------------------------------------------------


def _canary_step(
    world: World, candidate: RevisionRecord | None, now: datetime, stamp: str, serving: int | None = None
) -> canary.CanaryStep | None:
    """The canary of `candidate` (the revision rolling out) as it goes on in this pass; None when the rollout is
    no canary: not strategy Canary, the model's first revision, spec.rollbackTo, or a revision that served."""
    model = world.model
    rules = model.spec.rollout.canary
    if serving is None:
        entry = plan.serving_entry(model.status.history)
        serving = entry.revision if entry is not None else None
    if (model.spec.rollout.strategy != "Canary" or rules is None or candidate is None or serving is None
            or serving == candidate.revision or model.spec.rollback_to is not None):
        return None
    return canary.decide(canary.CanaryInputs(
        rules=rules,
        previous=model.status.canary,
        candidate=candidate.revision,
        stable=serving,
        replicas=model.spec.desired_replicas(),
        ready=(_ready(world.deployment), _ready(world.canary_deployment)),
        window=world.window,
        promote=world.annotation(names.PROMOTE_ANNOTATION),
        abort=world.annotation(names.ABORT_ANNOTATION),
        now=now,
        stamp=stamp,
        routed=world.routed,
    ))


def _canary_after(
    world: World, transition: plan.Transition, running: canary.CanaryStep | None, now: datetime, stamp: str
) -> canary.CanaryStep | None:
    """The canary after the revisions' transition: the running one goes on, a new rollout starts its own; None
    when no canary runs after this pass."""
    target, rollout, serving = transition.target, transition.rollout, transition.serving
    if target is None or rollout is None or target.revision != rollout.revision:
        return None
    if running is not None and running.status.revision == rollout.revision:
        return running
    return _canary_step(world, rollout, now, stamp, serving.revision if serving is not None else None)


def _canary_status(
    world: World, transition: plan.Transition, step: canary.CanaryStep | None, running: canary.CanaryStep | None
) -> CanaryStatus | None:
    """status.canary: the running canary's, or how the last one ended (with this pass's analysis, if any)."""
    if step is not None:
        return step.status
    before = world.model.status.canary
    if before is None or before.phase not in ("Progressing", "Promoting"):
        return before
    if running is not None and running.status.revision == before.revision:
        before = running.status
    failed, serving = transition.failed_now, transition.serving
    if failed is not None and failed.revision == before.revision:
        return canary.ended(before, "Aborted", f"revision {before.revision} failed ({failed.reason}: "
                                               f"{failed.message}); revision {before.stable_revision} serves")
    if serving is not None and serving.revision == before.revision:
        return canary.ended(before, "Promoted", f"revision {before.revision} promoted and serving")
    return canary.ended(before, "Aborted", f"the canary of revision {before.revision} ended before it was promoted "
                                           "(the spec changed)")


def _with_strategy(model: MLModel, strategy: Literal["Surge", "Replace"]) -> MLModel:
    rollout = model.spec.rollout.model_copy(update={"strategy": strategy})
    return model.model_copy(update={"spec": model.spec.model_copy(update={"rollout": rollout})})


def _route(world: World, config: OperatorConfig, step: canary.CanaryStep | None) -> Object | None:
    """The model's HTTPRoute on the configured Gateway (None: none configured): all to the model's Service, or
    during a canary the step's weight to the candidate's."""
    gateway = config.canary.gateway
    if gateway is None:
        return None
    weight = None
    if step is not None:
        weight = canary.route_weight(step.status, _ready(world.canary_deployment))
    return render_http_route(world.model, gateway, weight)


def _if_changed(live: Object | None, wanted: Object | None) -> Object | None:
    return None if wanted is None or plan.classify(live, wanted) is plan.Action.UNCHANGED else wanted


def _ready(deployment: Object | None) -> int:
    return Deployment.of(deployment).ready if deployment is not None else 0


def _transition(
    world: World, wanted: RevisionRecord | None, live: plan.LiveTemplate, config: OperatorConfig, now: datetime,
    stamp: str, running: canary.CanaryStep | None = None,
) -> plan.Transition:
    """plan.advance over what the pass found, with the evidence of the rolling-out revision's failure: from the
    model's Deployment and pods, or during a canary from the candidate's (and the canary's own abort)."""
    previous, spec = world.model.status, world.model.spec
    evidence = None
    limits = Limits.of(config.failure_detection)
    in_canary = running is not None and running.status.phase != "Promoting"  # (Aborted: by this pass's decision)
    if in_canary and previous.rollout is not None:
        evidence = plan.revision_failure(world.canary_deployment, world.pods, previous.rollout.revision, now, limits)
        if evidence is None and running is not None and running.aborted is not None:
            evidence = Problem("CanaryAborted", running.aborted)
    elif previous.rollout is not None and previous.rollout.revision == live.revision and not live.complete:
        evidence = plan.revision_failure(world.deployment, world.pods, previous.rollout.revision, now, limits)
    retry = world.retry_annotation
    return plan.advance(
        plan.RevisionInputs(
            status=previous,
            wanted=wanted,
            live=live,
            evidence=evidence,
            auto_rollback=spec.rollout.auto_rollback,
            retry=retry is not None and retry != previous.last_retry,
            history_limit=spec.revision_history_limit,
            now=stamp,
            canary=previous.rollout.revision if in_canary and previous.rollout is not None else None,
        )
    )


def _facts(
    world: World, validation: Validation, wanted: RevisionRecord | None, failure: Failure | None,
    transition: plan.Transition, observed: Observation, config: OperatorConfig, step: canary.CanaryStep | None,
    canary_status: CanaryStatus | None,
) -> PassFacts:
    """What status is computed from."""
    model = world.model
    return PassFacts(
        generation=model.metadata.generation,
        desired_replicas=model.spec.desired_replicas(),
        url=names.model_url(model.metadata.name, model.metadata.namespace, config.cluster_domain),
        selector=names.selector_string(model.metadata.name),
        observation=observed,
        package=wanted.package() if wanted else None,
        failure=failure,
        pending=validation.message if isinstance(validation, Pending) else None,
        applied_revision=(step.status.stable_revision if step is not None and step.status.phase == "Progressing"
                          else transition.target.revision if transition.target else None),
        revisions=_revisions(model, wanted, transition, world.retry_annotation or model.status.last_retry),
        quality_gate=model.spec.quality_gate is not None and model.spec.rollback_to is None,
        canary=canary_status,
    )


def _changed_objects(
    world: World, target: RevisionRecord | None, config: OperatorConfig, replicas: int | None = None,
    *, canary: bool = False, serving: bool = True,
) -> tuple[Object | None, Object | None, Failure | None]:
    """`target`'s Deployment (the candidate's with `canary`) and Service where they differ from the live ones
    (None: leave it), or why `target` cannot be rendered (e.g. a history entry's node pool left the
    configuration). `replicas`: instead of the spec's (a canary's split)."""
    if target is None:
        return None, None, None
    try:
        deployment, service = _render(world.model, target, config, replicas, canary=canary, serving=serving)
    except plan.Refused as refused:
        return None, None, Failure(refused.reason, refused.message)
    live = world.canary_deployment if canary else world.deployment
    owner = model_owner_reference(world.model)
    taken = plan.foreign(live, owner) or (None if canary else plan.foreign(world.service, owner))
    if taken is not None:
        return None, None, Failure("NameConflict", taken)
    return (
        None if plan.classify(live, deployment) is plan.Action.UNCHANGED else deployment,
        None if plan.classify(world.service, service) is plan.Action.UNCHANGED else service,
        None,
    )


def status_write(world: World, before: MLModelStatus, status: MLModelStatus) -> StatusWrite:
    """`status` over `before`, with the events of the transition under their names (none when unchanged)."""
    if status == before:
        return StatusWrite(before, before)
    meta = world.model.metadata
    events = tuple(
        Event(event_name(meta.name, meta.uid, before, spec), spec.type, spec.reason, spec.message)
        for spec in events_between(before, status)
    )
    return StatusWrite(before, status, events)


def wanted_revision(
    model: MLModel, package: PackageStatus | None, live: plan.LiveTemplate, config: OperatorConfig, stamp: str
) -> RevisionRecord:
    """The revision the spec asks for: spec.rollbackTo's from history, else spec.source's validated package
    rendered with the spec's settings (numbered by plan.revision_number). Raises plan.Refused."""
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
        return plan.record_of(pinned)
    assert package is not None, "spec.source's package is validated unless spec.rollbackTo is set"
    pool = plan.resolve_pool(spec, config)
    fmt = plan.resolve_format(spec, package.format, config)
    package = package.model_copy(update={"format": fmt})
    draft = RenderInput(model=model, config=config, package=package, pool=pool, revision=0)
    fingerprint = template_fingerprint(draft)
    return RevisionRecord(
        revision=plan.revision_number(fingerprint, live, status),
        uri=package.uri,
        digest=package.digest,
        format=package.format,
        size=package.size,
        created_at=stamp,
        fingerprint=fingerprint,
        settings=RevisionSettings.of(spec),
        image=draft.runtime_image(),
        examples=package.examples,
    )


def _render_input(model: MLModel, target: RevisionRecord, config: OperatorConfig) -> RenderInput:
    """What `target` renders from: its own settings over the current spec. Raises plan.Refused."""
    spec = target.settings.apply_to(model.spec)
    return RenderInput(
        model=model.model_copy(update={"spec": spec}),
        config=config,
        package=target.package(),
        pool=plan.resolve_pool(spec, config),
        revision=target.revision,
        image=target.image,
    )


def _render(
    model: MLModel, target: RevisionRecord, config: OperatorConfig, replicas: int | None = None,
    *, canary: bool = False, serving: bool = True,
) -> tuple[Object, Object]:
    """`target`'s Deployment and Service. Raises plan.Refused."""
    inp = _render_input(model, target, config)
    return render_deployment(inp, replicas, canary=canary, serving=serving), render_service(inp)


def _shadow_objects(
    world: World, target: RevisionRecord, config: OperatorConfig, step: canary.CanaryStep | None
) -> tuple[Object | None, Object | None]:
    """The candidate's Service and the shadow ConfigMap while a canary with shadow traffic steps through (None:
    not wanted); the ConfigMap once the Service has its ClusterIP (the pass after it was created)."""
    rules = world.model.spec.rollout.canary
    if step is None or rules is None:
        return None, None
    inp = _render_input(world.model, target, config)
    if world.routed and (step.status.phase == "Promoting" or rules.shadow is None):
        return render_canary_service(inp), None  # the route's other backend
    if step.status.phase != "Progressing" or rules.shadow is None:
        return None, None
    address = ((world.canary_service or {}).get("spec") or {}).get("clusterIP")
    if not address or address == "None":
        return render_canary_service(inp), world.shadow_config  # keep one there (none yet: nothing to delete)
    return render_canary_service(inp), render_shadow_config(inp, rules.shadow, target.revision, address)


def _revisions(
    model: MLModel, wanted: RevisionRecord | None, transition: plan.Transition, last_retry: str | None
) -> Revisions:
    blocked = transition.blocked
    why = Failure(blocked.reason or "Failed", blocked.message or "") if blocked is not None else None
    target = transition.target
    return Revisions(
        history=transition.history,
        rollout=transition.rollout,
        desired=wanted.revision if wanted else None,
        failed_revision=blocked.revision if blocked else None,
        rolled_back=why if transition.rolled_back else None,
        failed=why if not transition.rolled_back else None,
        auto_rollback=model.spec.rollout.auto_rollback,
        in_rollout=transition.rollout is not None and target is not None
        and transition.rollout.revision == target.revision,
        pinned=model.spec.rollback_to is not None,
        last_retry=last_retry,
    )


def _counts(transition: plan.Transition, previous: MLModelStatus) -> Counts:
    failed = transition.failed_now
    if failed is not None:
        if transition.rolled_back:
            return Counts("rolled_back", failed.reason or "")
        return Counts("failed")
    served = transition.served_now
    if served is not None and previous.rollout is not None and previous.rollout.revision == served:
        return Counts("succeeded")
    return Counts()


def stalled(status: MLModelStatus) -> Failure | None:
    """The Stalled condition's reason and message, when it is True."""
    cond = find(status.conditions, "Stalled")
    return Failure(cond.reason, cond.message) if cond is not None and cond.status == "True" else None


def ready(status: MLModelStatus) -> bool:
    cond = find(status.conditions, "Ready")
    return cond is not None and cond.status == "True"
