"""What the Deployment, its ReplicaSets and its pods say, reduced to what status needs (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlmodel_operator import names

# Container waiting reasons that will not go away without a change.
STUCK_WAITING_REASONS = frozenset(
    {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError"}
)


@dataclass(frozen=True)
class PodProblem:
    """A pod of the desired revision that cannot make progress."""

    reason: str  # Unschedulable, CrashLoopBackOff, ImagePullBackOff, ...
    pod: str
    message: str


@dataclass(frozen=True)
class Observation:
    """The runtime Deployment's state for one desired revision."""

    exists: bool = False
    up_to_date: bool = False  # the Deployment controller has seen the latest spec
    desired: int = 0
    replicas: int = 0
    updated: int = 0
    ready: int = 0
    available: int = 0
    revision: int | None = None  # the revision the Deployment's template carries
    minimum_available: bool = False  # the Deployment's Available condition
    deadline_exceeded: str | None = None  # message of Progressing=False/ProgressDeadlineExceeded
    available_by_revision: Mapping[int, int] = field(default_factory=dict)
    problems: tuple[PodProblem, ...] = ()

    @property
    def complete(self) -> bool:
        """The rollout is done: only pods of the current template, all available (kubectl rollout status)."""
        return (
            self.exists
            and self.up_to_date
            and self.updated == self.desired
            and self.replicas == self.desired
            and self.available == self.desired
        )


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    return int(value) if isinstance(value, int) else 0


def _revision_of(obj: Mapping[str, Any]) -> int | None:
    labels = obj.get("metadata", {}).get("labels") or {}
    value = labels.get(names.REVISION_LABEL)
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond  # type: ignore[no-any-return]
    return None


def pod_problem(pod: Mapping[str, Any]) -> PodProblem | None:
    """Why a pod is stuck, if it is: not schedulable, crash-looping, image or config errors."""
    name = str(pod.get("metadata", {}).get("name", "?"))
    scheduled = _condition(pod, "PodScheduled")
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return PodProblem("Unschedulable", name, str(scheduled.get("message", "")))
    for status in pod.get("status", {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason not in STUCK_WAITING_REASONS:
            continue
        terminated = (status.get("lastState") or {}).get("terminated") or {}
        exit_code = terminated.get("exitCode")
        if isinstance(exit_code, int) and exit_code in names.RUNTIME_EXIT_REASONS:
            detail = f"the runtime exited with code {exit_code} ({names.RUNTIME_EXIT_REASONS[exit_code]})"
        elif isinstance(exit_code, int):
            detail = f"last exit code {exit_code}" + (f" ({terminated['reason']})" if terminated.get("reason") else "")
        elif reason == "CrashLoopBackOff":
            detail = ""  # the kubelet's message carries a growing back-off time: not stable
        else:
            detail = str(waiting.get("message") or "")
        # No restart count in the message: it would change the status on every restart.
        message = f"container {status.get('name')} {reason}" + (f": {detail}" if detail else "")
        return PodProblem(str(reason), name, message)
    return None


def observe(
    deployment: Mapping[str, Any] | None,
    replicasets: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
) -> Observation:
    """Reduce the live objects to an Observation; pods of older revisions do not count as problems."""
    if deployment is None:
        return Observation()
    spec = deployment.get("spec", {})
    status = deployment.get("status", {})
    meta = deployment.get("metadata", {})
    revision = _revision_of(spec.get("template", {}))
    progressing = _condition(deployment, "Progressing")
    deadline = None
    if progressing and progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded":
        deadline = str(progressing.get("message", "the rollout made no progress in time"))
    available_cond = _condition(deployment, "Available")
    by_revision: dict[int, int] = {}
    for rs in replicasets:
        rs_revision = _revision_of(rs.get("spec", {}).get("template", {}))
        if rs_revision is not None:
            by_revision[rs_revision] = by_revision.get(rs_revision, 0) + _int(rs.get("status", {}), "availableReplicas")
    problems = tuple(
        problem
        for pod in sorted(pods, key=lambda p: str(p.get("metadata", {}).get("name", "")))
        if _revision_of(pod) == revision and not pod.get("metadata", {}).get("deletionTimestamp")
        for problem in [pod_problem(pod)]
        if problem is not None
    )
    return Observation(
        exists=True,
        up_to_date=_int(status, "observedGeneration") >= _int(meta, "generation"),
        desired=_int(spec, "replicas") if "replicas" in spec else 1,
        replicas=_int(status, "replicas"),
        updated=_int(status, "updatedReplicas"),
        ready=_int(status, "readyReplicas"),
        available=_int(status, "availableReplicas"),
        revision=revision,
        minimum_available=bool(available_cond and available_cond.get("status") == "True"),
        deadline_exceeded=deadline,
        available_by_revision=by_revision,
        problems=problems,
    )
