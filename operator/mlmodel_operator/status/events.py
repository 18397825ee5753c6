"""Kubernetes events worth posting when a pass changes the status (never on a steady model), and their names.

An event is posted *before* the status write that records its transition, under a name derived from the
transition (the model's uid, the event's reason and the stored status it moves away from). A pass killed
between the two, or whose status write is refused, is followed by a pass that finds the same stored status,
derives the same names and posts nothing twice (the API server answers 409 AlreadyExists); once the status is
written, the next transition starts from another stored status and gets new names.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal

from mlmodel_operator.spec import MLModelStatus
from mlmodel_operator.status.conditions import find

# Event names are DNS subdomains (at most 253 characters): the model's name, a dot and a 16-digit hash.
MAX_NAME_PREFIX = 200


@dataclass(frozen=True)
class EventSpec:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def events_between(before: MLModelStatus, after: MLModelStatus) -> list[EventSpec]:
    """Events for the transitions from `before` to `after`."""
    out: list[EventSpec] = []
    started = after.rollout
    if started is not None and (before.rollout is None or before.rollout.revision != started.revision):
        message = f"revision {started.revision}: package {started.uri} ({started.digest})"
        out.append(EventSpec("Normal", "RolloutStarted", message))
    old_stalled, new_stalled = find(before.conditions, "Stalled"), find(after.conditions, "Stalled")
    # On a flip or a new reason only: a message that changes (another pod) is not worth an event.
    if new_stalled and new_stalled.status == "True" and (
        old_stalled is None or old_stalled.status != "True" or old_stalled.reason != new_stalled.reason
    ):
        out.append(EventSpec("Warning", new_stalled.reason, new_stalled.message))
    old_ready, new_ready = find(before.conditions, "Ready"), find(after.conditions, "Ready")
    if new_ready and new_ready.status == "True" and (old_ready is None or old_ready.status != "True"):
        out.append(EventSpec("Normal", "Ready", new_ready.message))
    out += _canary_events(before, after)
    old_problem, new_problem = _autoscaling_problem(before), _autoscaling_problem(after)
    # The HPA cannot scale (its metric is missing, ...): the replicas stay; on a new reason only.
    if new_problem is not None and _reason(new_problem) != (_reason(old_problem) if old_problem else None):
        out.append(EventSpec("Warning", "AutoscalingUnavailable", new_problem))
    elif old_problem is not None and new_problem is None and after.autoscaling is not None:
        out.append(EventSpec("Normal", "AutoscalingRecovered", f"the HPA scales again (it was: {old_problem})"))
    return out


def _canary_events(before: MLModelStatus, after: MLModelStatus) -> list[EventSpec]:
    """Each decision of a canary: it starts, an analysis window ends, a step begins, it is promoted or aborted."""
    old, new = before.canary, after.canary
    if new is None:
        return []
    out: list[EventSpec] = []
    fresh = old is None or old.revision != new.revision or old.phase not in ("Progressing", "Promoting")
    if fresh and new.phase == "Progressing":
        started = (f"revision {new.revision} beside revision {new.stable_revision}: step 1/{new.steps}, "
                   f"weight {new.weight}%")
        out.append(EventSpec("Normal", "CanaryStarted", started))
    window = new.analysis
    if window is not None and (old is None or old.analysis is None or old.analysis.time != window.time):
        kind: Literal["Normal", "Warning"] = "Warning" if window.verdict == "Fail" else "Normal"
        out.append(EventSpec(kind, f"CanaryAnalysis{window.verdict}", f"revision {new.revision}, step {new.step}: "
                                                                       f"{window.message}"))
    if not fresh and old is not None and new.phase == "Progressing" and new.step != old.step:
        out.append(EventSpec("Normal", "CanaryStep", f"revision {new.revision}: step {new.step}/{new.steps}, "
                                                     f"weight {new.weight}% ({new.message})"))
    if new.phase != (old.phase if old is not None and not fresh else "Progressing"):
        if new.phase == "Promoting":
            out.append(EventSpec("Normal", "CanaryPromoting", f"revision {new.revision}: {new.message}"))
        elif new.phase == "Promoted":
            out.append(EventSpec("Normal", "CanaryPromoted", new.message))
        elif new.phase == "Aborted":
            out.append(EventSpec("Warning", "CanaryAborted", new.message))
    return out


def _autoscaling_problem(status: MLModelStatus) -> str | None:
    return status.autoscaling.problem if status.autoscaling is not None else None


def _reason(problem: str) -> str:
    """A problem is "Reason: message"; its messages change (values, times) while the reason stays."""
    return problem.split(":", 1)[0]


def transition_mark(before: MLModelStatus) -> str:
    """What identifies the stored status a transition starts from, without what drifts while nothing happens
    (replica counts, messages): each condition's status, reason and transition time, the revision being rolled
    out and each revision's outcome. Every status write that posts an event changes one of these."""
    mark: dict[str, object] = {
        "conditions": [(c.type, c.status, c.reason, c.last_transition_time) for c in before.conditions],
        "rollout": before.rollout.revision if before.rollout is not None else None,
        "history": [(e.revision, e.outcome) for e in before.history],
        "generation": before.observed_generation,
    }
    problem = _autoscaling_problem(before)
    if problem is not None:
        mark["autoscaling"] = _reason(problem)
    if before.canary is not None:
        c = before.canary
        mark["canary"] = [c.revision, c.phase, c.step, c.analysis.time if c.analysis is not None else None]
    return json.dumps(mark, sort_keys=True, separators=(",", ":"))


def event_name(model: str, uid: str, before: MLModelStatus, event: EventSpec) -> str:
    """The event's deterministic name: the same transition from the same stored status gets the same name."""
    key = "\n".join((uid, event.type, event.reason, transition_mark(before)))
    return f"{model[:MAX_NAME_PREFIX]}.{hashlib.sha256(key.encode()).hexdigest()[:16]}"
