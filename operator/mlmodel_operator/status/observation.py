"""What the Deployment and its pods say (read through mlmodel_operator.workload), reduced to
what status needs (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlmodel_operator.workload import Deployment, Pod, Problem, pod_problem


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
    problems: tuple[Problem, ...] = ()  # of the desired revision's pods, in name order

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


def observe(
    deployment: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
) -> Observation:
    """Reduce the live objects to an Observation; pods of older revisions do not count as problems."""
    if deployment is None:
        return Observation()
    dep = Deployment.of(deployment)
    problems = tuple(
        problem
        for pod in sorted(map(Pod.of, pods), key=lambda p: p.name)
        if pod.revision == dep.revision and not pod.deleting
        for problem in [pod_problem(pod)]
        if problem is not None
    )
    available = dep.conditions.get("Available")
    return Observation(
        exists=True,
        up_to_date=dep.observed_generation >= dep.generation,
        desired=dep.desired,
        replicas=dep.replicas,
        updated=dep.updated,
        ready=dep.ready,
        available=dep.available,
        revision=dep.revision,
        minimum_available=available is not None and available.status == "True",
        deadline_exceeded=dep.deadline_exceeded(),
        problems=problems,
    )
