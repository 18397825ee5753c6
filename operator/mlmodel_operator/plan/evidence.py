"""Has the revision being rolled out failed? Decided from its pods (workload.pod_failure, with its grace periods)
and then the Deployment's own ProgressDeadlineExceeded, as early as the evidence allows (pure: the clock comes
in as an argument)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from mlmodel_operator.workload import Deployment, Limits, Pod, Problem, pod_failure


def revision_failure(
    deployment: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    revision: int,
    now: datetime,
    limits: Limits,
) -> Problem | None:
    """The first evidence that `revision` failed, from its pods in name order, then from the Deployment."""
    for pod in sorted(map(Pod.of, pods), key=lambda p: p.name):
        if pod.revision != revision or pod.deleting:
            continue
        found = pod_failure(pod, now, limits)
        if found is not None:
            return found
    deadline = Deployment.of(deployment).deadline_exceeded() if deployment is not None else None
    return Problem("ProgressDeadlineExceeded", deadline) if deadline is not None else None
