"""The canary's part of a reconcile pass (pure): where the canary goes (steps.progress over the window that just
ended and the promote/abort annotations), how the replicas are split between the stable revision and the
candidate for the step's weight, and status.canary.

The traffic split without Gateway API is by replicas: the candidate's pods carry the model's selector labels,
so the model's Service sends them their share of the ready replicas. The GPU budget is `replicas +
maxExtraReplicas` pods: the candidate gets the replicas its weight needs (at least one) and the stable revision
gives up what would go over the budget (never its last pod).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mlmodel_operator.canary.analysis import Judgement, Verdict, Window
from mlmodel_operator.canary.steps import Action, StepRule, progress
from mlmodel_operator.spec import Canary, CanaryAnalysisStatus, CanaryStatus
from mlmodel_operator.workload import parse_time


@dataclass(frozen=True)
class WindowResult:
    """An analysis window that ended in this pass: both revisions' figures and the verdict on them."""

    judgement: Judgement
    stable: Window
    candidate: Window


@dataclass(frozen=True)
class CanaryInputs:
    rules: Canary  # spec.rollout.canary
    previous: CanaryStatus | None  # as stored
    candidate: int  # the revision rolling out
    stable: int  # the revision serving
    replicas: int  # what the spec (or the HPA) asks for
    ready: tuple[int, int]  # ready pods of (the stable revision, the candidate)
    window: WindowResult | None  # the window that ended in this pass, if one did
    promote: str | None  # the serving.mlmodel.io/promote annotation's value
    abort: str | None  # the serving.mlmodel.io/abort annotation's value
    now: datetime
    stamp: str  # `now` in RFC 3339
    routed: bool = False  # an HTTPRoute splits the traffic by weight (mode HTTPRoute), not the replicas


@dataclass(frozen=True)
class CanaryStep:
    """What the pass does about the canary."""

    status: CanaryStatus
    action: Action
    aborted: str | None = None  # why, when the canary aborts now (the failed revision's message)


def split(replicas: int, weight: int, extra: int) -> tuple[int, int]:
    """(stable, candidate) replicas for `weight` percent to the candidate within `replicas + extra` pods."""
    if replicas <= 0:
        return 0, 1
    candidate = max(1, min(replicas, int(replicas * weight / 100 + 0.5)))
    stable = max(1, min(replicas, replicas + extra - candidate))
    return stable, candidate


def achieved_weight(ready_stable: int, ready_candidate: int) -> int | None:
    """Percent of the Service's ready endpoints that are the candidate's; None while none is ready."""
    total = ready_stable + ready_candidate
    return round(100 * ready_candidate / total) if total else None


def _rules(rules: Canary) -> list[StepRule]:
    return [StepRule(s.weight, s.pause_seconds, s.until_promoted) for s in rules.steps]


def _analysis(window: WindowResult, stamp: str) -> CanaryAnalysisStatus:
    stable, candidate = window.stable, window.candidate
    return CanaryAnalysisStatus(
        verdict=window.judgement.verdict.value,
        message=window.judgement.message,
        time=stamp,
        candidate_requests=round(candidate.requests),
        candidate_errors=round(candidate.failures_beside(stable)),
        candidate_p99_seconds=candidate.p99_seconds,
        stable_requests=round(stable.requests),
        stable_p99_seconds=stable.p99_seconds,
    )


def _fresh(inp: CanaryInputs) -> CanaryStatus:
    """A canary that starts now, at step 1; annotation values set before it are not acted on."""
    return CanaryStatus(
        revision=inp.candidate, stable_revision=inp.stable, phase="Progressing", step=1, steps=len(inp.rules.steps),
        weight=inp.rules.steps[0].weight, stable_replicas=0, candidate_replicas=0, step_started_at=inp.stamp,
        message="step 1 starts", last_promote=inp.promote, last_abort=inp.abort,
    )


def decide(inp: CanaryInputs) -> CanaryStep:
    """The canary's next state: a new canary starts at step 1; a running one holds, moves to the next step, is
    promoted or aborted (steps.progress). A canary already promoting only follows its replicas."""
    prev = inp.previous
    if prev is None or prev.revision != inp.candidate or prev.phase not in ("Progressing", "Promoting"):
        return _placed(inp, _fresh(inp), Action.HOLD)
    if prev.phase == "Promoting":
        return _placed(inp, prev, Action.PROMOTE)
    promote = inp.promote is not None and inp.promote != prev.last_promote
    abort = inp.abort is not None and inp.abort != prev.last_abort
    judgement = inp.window.judgement if inp.window is not None else None
    passed = prev.passed_windows + (1 if judgement is not None and judgement.verdict is Verdict.PASS else 0)
    started = parse_time(prev.step_started_at)
    age = (inp.now - started).total_seconds() if started is not None else 0.0
    step = progress(_rules(inp.rules), prev.step - 1, age, passed, judgement, promote=promote, abort=abort)
    status = prev.model_copy(update={
        "passed_windows": passed,
        # A hold's message counts down the pause: kept until a window ends, so that a hold writes nothing.
        "message": prev.message if step.action is Action.HOLD and inp.window is None else step.message,
        "last_promote": inp.promote,
        "last_abort": inp.abort,
        "steps": len(inp.rules.steps),
        **({"analysis": _analysis(inp.window, inp.stamp)} if inp.window is not None else {}),
    })
    if step.action is Action.NEXT_STEP:
        status = status.model_copy(update={"step": step.step + 1, "weight": inp.rules.steps[step.step].weight,
                                           "step_started_at": inp.stamp, "passed_windows": 0})
    elif step.action is Action.PROMOTE:
        status = status.model_copy(update={"phase": "Promoting",
                                           "message": f"{step.message}; promoting revision {inp.candidate}"})
    elif step.action is Action.ABORT:
        return CanaryStep(status.model_copy(update={"phase": "Aborted"}), Action.ABORT, step.message)
    return _placed(inp, status, step.action)


def _placed(inp: CanaryInputs, status: CanaryStatus, action: Action) -> CanaryStep:
    """`status` with the replicas of its step's weight and the weight achieved now."""
    stable, candidate = split(inp.replicas, status.weight, inp.rules.max_extra_replicas)
    if status.phase == "Promoting":
        # Within the same budget: the model's Deployment takes the candidate's revision at the stable revision's
        # replicas, pod by pod, while the candidate keeps serving; it gets the spec's replicas once the candidate
        # is gone (pass_plan).
        stable = status.stable_replicas or stable
        candidate = status.candidate_replicas or candidate
    return CanaryStep(status.model_copy(update={
        "stable_replicas": stable,
        "candidate_replicas": candidate,
        "achieved_weight": _achieved(inp, status),
        "mode": "HTTPRoute" if inp.routed else "ReplicaRatio",
    }), action)


def _achieved(inp: CanaryInputs, status: CanaryStatus) -> int | None:
    if inp.routed:  # the route's weight, once the candidate has a ready pod to take it
        return route_weight(status, inp.ready[1])
    if not status.weight and status.phase != "Promoting":
        return 0  # a shadow-only step: the candidate's pods are not behind the model's Service
    return achieved_weight(*inp.ready)


def route_weight(status: CanaryStatus, ready_candidates: int) -> int:
    """The candidate's weight in the model's HTTPRoute: the step's, while it has a ready pod (a backend without
    endpoints would fail its share of the requests)."""
    return status.weight if ready_candidates > 0 else 0


def ended(status: CanaryStatus, phase: str, message: str) -> CanaryStatus:
    """The canary is over: Promoted (the candidate serves) or Aborted (it failed; the stable revision serves)."""
    return status.model_copy(update={"phase": phase, "message": message, "candidate_replicas": 0,
                                     "achieved_weight": None if phase == "Aborted" else 100})
