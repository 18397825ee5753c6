"""The runtime's workload as the operator reads it (pure): typed views of its Deployment and pods,
and the one answer to "why is this pod stuck" (`pod_problem`, now) and "has this pod's revision failed"
(`pod_failure`, from evidence with its grace periods, the clock an argument).

Status (status.observe: what to report about the serving or rolling-out revision) and the rollout's failure
evidence (plan.evidence: whether to roll back) both build on these, so both read pods the same way: one
parser of the revision label, one table of container waiting reasons that last, one Problem type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mlmodel_operator import names
from mlmodel_operator.config import FailureDetection

Raw = Mapping[str, Any]

# Container waiting reasons that last until the spec, the image or the configuration changes. CrashLoopBackOff
# is not one of them: a crash loop is judged by its restarts and exit codes.
STUCK_WAITING_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName",
                                   "CreateContainerConfigError", "CreateContainerError"})

# The runtime's exit codes for package problems that a restart cannot fix; a temporary one (the store
# unavailable) is left to the restart count.
PERMANENT_EXIT_CODES: Mapping[int, str] = {
    code: reason for code, reason in names.RUNTIME_EXIT_REASONS.items() if code not in names.TEMPORARY_EXIT_CODES
}

# After the startup probe's last failure, the kubelet stops the container within its termination grace period.
STOP_WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Problem:
    """Why something is stuck or failed: a CamelCase reason (Unschedulable, CrashLoop, ...) and a message that
    names the pod and container."""

    reason: str
    message: str


@dataclass(frozen=True)
class Limits:
    """The thresholds of the operator's failureDetection configuration."""

    crash_loop_restarts: int = 3
    never_ready_seconds: float = 120.0
    unschedulable_seconds: float = 180.0
    startup_grace_seconds: float = 30.0
    stuck_seconds: float = 180.0

    @classmethod
    def of(cls, config: FailureDetection) -> Limits:
        return cls(**{name: getattr(config, name) for name in cls.__dataclass_fields__})


# -- parsing --------------------------------------------------------------------------------------


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def revision_of(obj: Raw | None) -> int | None:
    """The operator's revision number in an object's labels (a pod, a pod template)."""
    value = (((obj or {}).get("metadata") or {}).get("labels") or {}).get(names.REVISION_LABEL)
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _int(obj: Raw, key: str) -> int:
    value = obj.get(key)
    return int(value) if isinstance(value, int) else 0


@dataclass(frozen=True)
class Condition:
    """A condition of a pod or Deployment."""

    status: str
    reason: str = ""
    message: str = ""
    since: datetime | None = None  # lastTransitionTime


def conditions_of(obj: Raw) -> dict[str, Condition]:
    out: dict[str, Condition] = {}
    for cond in (obj.get("status") or {}).get("conditions") or []:
        out[str(cond.get("type"))] = Condition(
            str(cond.get("status", "")), str(cond.get("reason") or ""), str(cond.get("message") or ""),
            parse_time(cond.get("lastTransitionTime")),
        )
    return out


@dataclass(frozen=True)
class Container:
    """A container's status, with the startup budget its spec gives it."""

    name: str
    restarts: int = 0
    started: bool = False
    running_since: datetime | None = None  # None: not running
    waiting_reason: str | None = None
    waiting_message: str = ""
    last_exit_code: int | None = None  # of the last termination
    last_reason: str = ""
    last_message: str = ""  # the container's termination log
    last_started: datetime | None = None
    last_finished: datetime | None = None
    startup_budget: float | None = None  # seconds the startup probe allows; None: no startup probe

    @classmethod
    def of(cls, status: Raw, spec: Raw) -> Container:
        state = status.get("state") or {}
        running = state.get("running")
        waiting = state.get("waiting") or {}
        last = (status.get("lastState") or {}).get("terminated") or {}
        code = last.get("exitCode")
        return cls(
            name=str(status.get("name", "?")),
            restarts=int(status.get("restartCount") or 0),
            started=bool(status.get("started")),
            running_since=parse_time(running.get("startedAt")) if isinstance(running, Mapping) else None,
            waiting_reason=str(waiting["reason"]) if waiting.get("reason") else None,
            waiting_message=str(waiting.get("message") or ""),
            last_exit_code=code if isinstance(code, int) else None,
            last_reason=str(last.get("reason") or ""),
            last_message=str(last.get("message") or "").strip(),
            last_started=parse_time(last.get("startedAt")),
            last_finished=parse_time(last.get("finishedAt")),
            startup_budget=startup_budget(spec),
        )

    @property
    def running(self) -> bool:
        return self.running_since is not None

    def exit(self) -> str:
        """The last exit, for messages: the code, and the runtime's name for it or the kubelet's reason."""
        code = self.last_exit_code
        if code is not None and code in PERMANENT_EXIT_CODES:
            return f"exit code {code} ({PERMANENT_EXIT_CODES[code]})"
        return f"exit code {code}" + (f" ({self.last_reason})" if self.last_reason else "")


def startup_budget(container_spec: Raw) -> float | None:
    """Seconds the kubelet gives the container's startup probe before it kills the container."""
    probe = container_spec.get("startupProbe")
    if not isinstance(probe, Mapping):
        return None
    period = int(probe.get("periodSeconds", 10))
    return float(int(probe.get("initialDelaySeconds", 0)) + period * int(probe.get("failureThreshold", 3)))


@dataclass(frozen=True)
class Pod:
    name: str
    revision: int | None = None
    deleting: bool = False
    created: datetime | None = None
    conditions: Mapping[str, Condition] = field(default_factory=dict)
    containers: tuple[Container, ...] = ()

    @classmethod
    def of(cls, raw: Raw) -> Pod:
        meta = raw.get("metadata") or {}
        specs = {c.get("name"): c for c in (raw.get("spec") or {}).get("containers") or []}
        statuses = (raw.get("status") or {}).get("containerStatuses") or []
        return cls(
            name=str(meta.get("name", "?")),
            revision=revision_of(raw),
            deleting=bool(meta.get("deletionTimestamp")),
            created=parse_time(meta.get("creationTimestamp")),
            conditions=conditions_of(raw),
            containers=tuple(Container.of(s, specs.get(s.get("name"), {})) for s in statuses),
        )

    def unschedulable(self) -> Condition | None:
        """The PodScheduled=False/Unschedulable condition, when the scheduler found no node."""
        cond = self.conditions.get("PodScheduled")
        return cond if cond is not None and cond.status == "False" and cond.reason == "Unschedulable" else None


@dataclass(frozen=True)
class Deployment:
    revision: int | None  # the pod template's
    fingerprint: str | None  # the pod template's names.FINGERPRINT_ANNOTATION
    generation: int
    observed_generation: int
    desired: int
    replicas: int
    updated: int
    ready: int
    available: int
    conditions: Mapping[str, Condition]

    @classmethod
    def of(cls, raw: Raw) -> Deployment:
        spec, status = raw.get("spec") or {}, raw.get("status") or {}
        template = spec.get("template") or {}
        fingerprint = ((template.get("metadata") or {}).get("annotations") or {}).get(names.FINGERPRINT_ANNOTATION)
        return cls(
            revision=revision_of(template),
            fingerprint=fingerprint if isinstance(fingerprint, str) else None,
            generation=_int(raw.get("metadata") or {}, "generation"),
            observed_generation=_int(status, "observedGeneration"),
            desired=_int(spec, "replicas") if "replicas" in spec else 1,
            replicas=_int(status, "replicas"),
            updated=_int(status, "updatedReplicas"),
            ready=_int(status, "readyReplicas"),
            available=_int(status, "availableReplicas"),
            conditions=conditions_of(raw),
        )

    def deadline_exceeded(self) -> str | None:
        """The message of Progressing=False/ProgressDeadlineExceeded, when the rollout made no progress in time."""
        cond = self.conditions.get("Progressing")
        if cond is not None and cond.reason == "ProgressDeadlineExceeded":
            return cond.message or "the rollout made no progress in time"
        return None


# -- diagnosis ------------------------------------------------------------------------------------


def pod_problem(pod: Pod) -> Problem | None:
    """Why a pod is stuck now, if it is: not schedulable, crash-looping, image or configuration errors. The
    message stays the same while the problem does (no restart counts, no back-off times): status shows it."""
    unschedulable = pod.unschedulable()
    if unschedulable is not None:
        return Problem("Unschedulable", f"pod {pod.name}: {unschedulable.message}")
    for c in pod.containers:
        reason = c.waiting_reason
        if reason is None or (reason not in STUCK_WAITING_REASONS and reason != "CrashLoopBackOff"):
            continue
        code = c.last_exit_code
        if code is not None and code in names.RUNTIME_EXIT_REASONS:
            detail = f"the runtime exited with code {code} ({names.RUNTIME_EXIT_REASONS[code]})"
        elif code is not None:
            detail = f"last exit code {code}" + (f" ({c.last_reason})" if c.last_reason else "")
        elif reason == "CrashLoopBackOff":
            detail = ""  # the kubelet's message carries a growing back-off time: not stable
        else:
            detail = c.waiting_message
        return Problem(reason, f"pod {pod.name}: container {c.name} {reason}" + (f": {detail}" if detail else ""))
    return None


def pod_failure(pod: Pod, now: datetime, limits: Limits) -> Problem | None:
    """Why this pod shows its revision has failed, or None (yet).

    In order: unschedulable for longer than the grace period; a runtime container that exits with one of the
    runtime's package exit codes (it will fail the same way every time), that was killed or is still not
    started after its startup probe's whole budget, or that restarted the configured number of times; image or
    configuration errors that last; running with its model loaded but never ready.
    """
    unschedulable = pod.unschedulable()
    if unschedulable is not None:
        waited = _seconds_since(unschedulable.since, now)
        if waited is not None and waited > limits.unschedulable_seconds:
            return Problem("Unschedulable", f"pod {pod.name} unschedulable for {waited:.0f}s: {unschedulable.message}")
        return None
    pod_age = _seconds_since(pod.created, now)
    for c in pod.containers:
        found = _container_failure(f"pod {pod.name}: container {c.name}", c, pod_age, now, limits)
        if found is not None:
            return found
    ready = pod.conditions.get("Ready")
    all_started = bool(pod.containers) and all(c.started and c.running for c in pod.containers)
    if all_started and ready is not None and ready.status == "False":
        unready = _seconds_since(ready.since, now)
        if unready is not None and unready > limits.never_ready_seconds:
            return Problem(
                "NeverReady",
                f"pod {pod.name} has been running, model loaded, but not ready for {unready:.0f}s "
                "(its readiness probe keeps failing)",
            )
    return None


def _seconds_since(when: datetime | None, now: datetime) -> float | None:
    return None if when is None else (now - when).total_seconds()


def _container_failure(where: str, c: Container, pod_age: float | None, now: datetime, limits: Limits,
                       ) -> Problem | None:
    code, budget = c.last_exit_code, c.startup_budget
    if c.restarts >= 1 and code is not None and code in PERMANENT_EXIT_CODES:
        said = f": {c.last_message}" if c.last_message else ""  # the runtime's termination log
        reason = PERMANENT_EXIT_CODES[code] if code in names.OWN_REASON_EXIT_CODES else "CrashLoop"
        return Problem(reason, f"{where}: the runtime exited with {c.exit()}{said}")
    if budget is not None:
        ran = _seconds_since(c.running_since, now)
        if ran is not None and not c.started and ran > budget + limits.startup_grace_seconds:
            return Problem("StartupTimeout",
                           f"{where} has not passed its startup probe after {ran:.0f}s (budget {budget:.0f}s)")
        ran_before = (c.last_finished - c.last_started).total_seconds() if c.last_started and c.last_finished else None
        # Killed by the kubelet when the budget ran out: it ran for the budget, plus at most the termination
        # grace period (a container that served for hours and was then killed is not a startup failure).
        if c.restarts >= 1 and ran_before is not None and budget - 1 <= ran_before <= budget + STOP_WINDOW_SECONDS:
            return Problem(
                "StartupTimeout",
                f"{where} was stopped after {ran_before:.0f}s, its startup probe's budget ({budget:.0f}s), {c.exit()}",
            )
    if c.restarts >= limits.crash_loop_restarts:
        return Problem("CrashLoop", f"{where} restarted {c.restarts} times, last {c.exit()}")
    waiting = c.waiting_reason
    if waiting in STUCK_WAITING_REASONS and pod_age is not None and pod_age > limits.stuck_seconds:
        detail = f": {c.waiting_message}" if c.waiting_message else ""
        return Problem(str(waiting), f"{where} {waiting} for {pod_age:.0f}s{detail}")
    return None
