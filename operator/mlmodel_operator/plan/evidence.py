"""Has the revision being rolled out failed? Decided from its pods and the Deployment, as early as the
evidence allows (pure: the clock comes in as an argument).

In order: a pod that cannot be scheduled for longer than the grace period; a runtime container that
exits with one of the runtime's package exit codes (it will fail the same way every time), that was
killed or is still not started after its startup probe's whole budget, or that restarted the configured
number of times; image or configuration errors that last; a pod running with its model loaded but never
ready; and the Deployment's own ProgressDeadlineExceeded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlmodel_operator import names
from mlmodel_operator.config import FailureDetection
from mlmodel_operator.plan.revisions import RevisionFailure

# The runtime's exit codes for package problems that a restart cannot fix; a temporary one (the store
# unavailable) is left to the restart count.
PERMANENT_EXIT_CODES: Mapping[int, str] = {
    code: reason for code, reason in names.RUNTIME_EXIT_REASONS.items() if code not in names.TEMPORARY_EXIT_CODES
}

# After the startup probe's last failure, the kubelet stops the container within its termination grace period.
STOP_WINDOW_SECONDS = 60.0

STUCK_WAITING_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName",
                                   "CreateContainerConfigError", "CreateContainerError"})


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
        return cls(
            crash_loop_restarts=config.crash_loop_restarts,
            never_ready_seconds=config.never_ready_seconds,
            unschedulable_seconds=config.unschedulable_seconds,
            startup_grace_seconds=config.startup_grace_seconds,
            stuck_seconds=config.stuck_seconds,
        )


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _seconds_since(value: object, now: datetime) -> float | None:
    when = parse_time(value)
    return None if when is None else (now - when).total_seconds()


def _condition(pod: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond  # type: ignore[no-any-return]
    return None


def startup_budget(container_spec: Mapping[str, Any]) -> float | None:
    """Seconds the kubelet gives the container's startup probe before it kills the container."""
    probe = container_spec.get("startupProbe")
    if not isinstance(probe, Mapping):
        return None
    period = int(probe.get("periodSeconds", 10))
    return float(int(probe.get("initialDelaySeconds", 0)) + period * int(probe.get("failureThreshold", 3)))


def _exit(terminated: Mapping[str, Any]) -> str:
    code = terminated.get("exitCode")
    if isinstance(code, int) and code in PERMANENT_EXIT_CODES:
        return f"exit code {code} ({PERMANENT_EXIT_CODES[code]})"
    reason = terminated.get("reason")
    return f"exit code {code}" + (f" ({reason})" if reason else "")


def _container_failure(
    pod_name: str, status: Mapping[str, Any], spec: Mapping[str, Any], pod_age: float | None,
    now: datetime, limits: Limits,
) -> RevisionFailure | None:
    name = status.get("name", "?")
    where = f"pod {pod_name}: container {name}"
    state = status.get("state") or {}
    last = (status.get("lastState") or {}).get("terminated") or {}
    restarts = int(status.get("restartCount") or 0)
    budget = startup_budget(spec)
    code = last.get("exitCode")
    if restarts >= 1 and isinstance(code, int) and code in PERMANENT_EXIT_CODES:
        said = f": {str(last['message']).strip()}" if last.get("message") else ""  # the runtime's termination log
        own = PERMANENT_EXIT_CODES[code] if code in names.OWN_REASON_EXIT_CODES else "CrashLoop"
        return RevisionFailure(own, f"{where}: the runtime exited with {_exit(last)}{said}")
    if budget is not None:
        running = state.get("running")
        ran = _seconds_since(running.get("startedAt"), now) if isinstance(running, Mapping) else None
        if ran is not None and not status.get("started") and ran > budget + limits.startup_grace_seconds:
            return RevisionFailure(
                "StartupTimeout",
                f"{where} has not passed its startup probe after {ran:.0f}s (budget {budget:.0f}s)",
            )
        started, finished = parse_time(last.get("startedAt")), parse_time(last.get("finishedAt"))
        ran_before = (finished - started).total_seconds() if started and finished else None
        # Killed by the kubelet when the budget ran out: it ran for the budget, plus at most the termination
        # grace period (a container that served for hours and was then killed is not a startup failure).
        if restarts >= 1 and ran_before is not None and budget - 1 <= ran_before <= budget + STOP_WINDOW_SECONDS:
            return RevisionFailure(
                "StartupTimeout",
                f"{where} was stopped after {ran_before:.0f}s, its startup probe's budget ({budget:.0f}s), "
                f"{_exit(last)}",
            )
    if restarts >= limits.crash_loop_restarts:
        return RevisionFailure("CrashLoop", f"{where} restarted {restarts} times, last {_exit(last)}")
    waiting = state.get("waiting") or {}
    reason = waiting.get("reason")
    if reason in STUCK_WAITING_REASONS and pod_age is not None and pod_age > limits.stuck_seconds:
        detail = str(waiting.get("message") or "")
        return RevisionFailure(str(reason), f"{where} {reason} for {pod_age:.0f}s" + (f": {detail}" if detail else ""))
    return None


def pod_failure(pod: Mapping[str, Any], now: datetime, limits: Limits) -> RevisionFailure | None:
    """Why this pod shows its revision has failed, or None (yet)."""
    meta = pod.get("metadata") or {}
    name = str(meta.get("name", "?"))
    scheduled = _condition(pod, "PodScheduled")
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        waited = _seconds_since(scheduled.get("lastTransitionTime"), now)
        if waited is not None and waited > limits.unschedulable_seconds:
            return RevisionFailure(
                "Unschedulable", f"pod {name} unschedulable for {waited:.0f}s: {scheduled.get('message', '')}"
            )
        return None
    pod_age = _seconds_since(meta.get("creationTimestamp"), now)
    specs = {c.get("name"): c for c in (pod.get("spec") or {}).get("containers") or []}
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        found = _container_failure(name, status, specs.get(status.get("name"), {}), pod_age, now, limits)
        if found is not None:
            return found
    ready = _condition(pod, "Ready")
    all_started = bool(statuses) and all(s.get("started") and (s.get("state") or {}).get("running") for s in statuses)
    if all_started and ready is not None and ready.get("status") == "False":
        unready = _seconds_since(ready.get("lastTransitionTime"), now)
        if unready is not None and unready > limits.never_ready_seconds:
            return RevisionFailure(
                "NeverReady",
                f"pod {name} has been running, model loaded, but not ready for {unready:.0f}s "
                "(its readiness probe keeps failing)",
            )
    return None


def _revision(obj: Mapping[str, Any]) -> int | None:
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(names.REVISION_LABEL)
    return int(value) if isinstance(value, str) and value.isdigit() else None


def revision_failure(
    deployment: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    revision: int,
    now: datetime,
    limits: Limits,
) -> RevisionFailure | None:
    """The first evidence that `revision` failed, from its pods, then from the Deployment's progress deadline."""
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name", ""))):
        if _revision(pod) != revision or (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        found = pod_failure(pod, now, limits)
        if found is not None:
            return found
    for cond in ((deployment or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return RevisionFailure("ProgressDeadlineExceeded", str(cond.get("message") or "no progress in time"))
    return None
